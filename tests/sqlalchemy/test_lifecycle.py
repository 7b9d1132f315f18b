"""Connection lifecycle against real servers: lifetime, idle reaping, reset, close."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.util.concurrency import greenlet_spawn

from poolbridge.adapters.sqlalchemy import close_engine, create_async_engine, engine_state, warm_up
from poolbridge.errors import PoolClosed
from poolbridge.pool.hooks import ConnectionEvent, Hooks

from .conftest import Target, eventually

pytestmark = pytest.mark.asyncio


def _id_sql(t: Target) -> str:
    return {"postgresql": "SELECT pg_backend_pid()", "mysql": "SELECT CONNECTION_ID()"}.get(
        t.backend, "SELECT 1"
    )


async def test_max_lifetime_replaces_old_connections(server_target: Target) -> None:
    t = server_target
    assert t.server is not None
    engine = await warm_up(create_async_engine(t.config(min_size=1, max_size=2, max_lifetime=0.5)))
    st = engine_state(engine)
    try:
        async with engine.connect() as conn:
            first = (await conn.exec_driver_sql(_id_sql(t))).scalar()
        assert first == st.recorded_ids[0]

        async def first_gone() -> bool:
            return first not in await t.server.live([first])  # type: ignore[union-attr]

        assert await eventually(first_gone, timeout=5)
        async with engine.connect() as conn:
            second = (await conn.exec_driver_sql(_id_sql(t))).scalar()
        assert second != first
        assert second in await t.server.live([second])
    finally:
        await close_engine(engine)


async def test_max_idle_closes_above_min_size_only_and_not_before(target: Target) -> None:
    engine = await warm_up(
        create_async_engine(target.config(min_size=1, max_size=3, max_idle=0.8, max_lifetime=None))
    )
    st = engine_state(engine)
    try:
        held = [await engine.connect() for _ in range(3)]
        for c in held:
            await c.close()
        ids = list(st.live_ids.values())
        assert len(ids) == 3
        await asyncio.sleep(0.3)  # well before max_idle: nothing closed
        assert len(st.live_ids) == 3
        if target.server is not None:
            assert len(await target.server.live(ids)) == 3

        async def shrunk() -> bool:
            return len(st.live_ids) == 1

        assert await eventually(shrunk, timeout=6)
        await asyncio.sleep(1.2)  # and never below min_size
        assert len(st.live_ids) == 1
        if target.server is not None:
            assert len(await target.server.live(ids)) == 1
        snap = st.recorder.snapshot()
        assert snap["connection.count.idle"] == 1 and snap["connection.closed"] == 2
    finally:
        await close_engine(engine)


async def test_reset_rolls_back_open_transaction(target: Target) -> None:
    table = f"pb_reset_{uuid.uuid4().hex[:8]}"
    engine = await warm_up(create_async_engine(target.config(min_size=1, max_size=1)))
    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql(f"CREATE TABLE {table} (x INT)")

        def dirty() -> None:
            # pool-level checkout/checkin of the DBAPI connection, no Connection object to
            # roll back for us: returned inside its open transaction, as a crashed task would
            raw = engine.sync_engine.raw_connection()
            cur = raw.cursor()
            cur.execute(f"INSERT INTO {table} VALUES (1)")
            cur.close()
            raw.close()

        await greenlet_spawn(dirty)
        async with engine.connect() as again:
            count = (await again.exec_driver_sql(f"SELECT count(*) FROM {table}")).scalar()
            assert count == 0
    finally:
        async with engine.begin() as conn:
            await conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
        await close_engine(engine)


async def test_close_drains_then_terminates_and_refuses(server_target: Target) -> None:
    t = server_target
    assert t.server is not None
    closed: list[object] = []
    engine = await warm_up(
        create_async_engine(t.config(min_size=2, max_size=3), hooks=Hooks(on_close=closed.append))
    )
    st = engine_state(engine)
    straggler = await engine.connect()
    ids = list(st.recorded_ids)
    assert await t.server.live(ids) == set(ids)
    await close_engine(engine, timeout=0.2)  # straggler is terminated after the drain

    async def all_gone() -> bool:  # a backend exits a moment after its socket closes
        return not await t.server.live(st.recorded_ids)  # type: ignore[union-attr]

    assert await eventually(all_gone, timeout=3), await t.server.live(st.recorded_ids)
    with pytest.raises(PoolClosed):
        await engine.connect()
    await close_engine(engine)  # idempotent
    await straggler.close()  # giving back a terminated connection is harmless
    snap = st.recorder.snapshot()
    assert snap["connection.count.used"] == 0 and snap["connection.count.idle"] == 0
    assert snap["connection.created"] == snap["connection.closed"] == len(closed)


async def test_full_reset_discards_session_state_and_replays_on_connect(
    server_target: Target,
) -> None:
    t = server_target
    connects: list[object] = []
    engine = await warm_up(
        create_async_engine(
            t.config(min_size=1, max_size=1, reset="full"), hooks=Hooks(on_connect=connects.append)
        )
    )
    if t.backend == "postgresql":
        dirty, probe, clean = "SET work_mem = '7MB'", "SHOW work_mem", "7MB"
    else:
        dirty, probe, clean = "SET @pb_marker = 42", "SELECT @pb_marker", 42
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql(dirty)
            assert (await conn.exec_driver_sql(probe)).scalar() == clean
            first = (await conn.exec_driver_sql(_id_sql(t))).scalar()
        async with engine.connect() as conn:
            assert (await conn.exec_driver_sql(probe)).scalar() != clean
            second = (await conn.exec_driver_sql(_id_sql(t))).scalar()
        if t.driver == "asyncpg":
            assert second == first  # reset in place (asyncpg's RESET ALL & co) ...
            assert len(connects) == 3  # ... and on_connect replayed after each reset
        else:
            assert second != first  # no full reset on this driver: the connection is replaced

            async def first_gone() -> bool:
                return first not in await t.server.live([first])  # type: ignore[union-attr]

            assert await eventually(first_gone, timeout=3)
    finally:
        await close_engine(engine)


async def test_leak_reported_once_with_the_acquiring_stack(target: Target) -> None:
    leaks: list[ConnectionEvent] = []
    engine = await warm_up(
        create_async_engine(
            target.config(min_size=1, max_size=1, leak_timeout=0.2),
            hooks=Hooks(on_leak=leaks.append),
        )
    )
    try:

        async def leaky_caller_site() -> AsyncConnection:
            return await engine.connect()

        conn = await leaky_caller_site()

        async def reported() -> bool:
            return len(leaks) == 1

        assert await eventually(reported, timeout=3)
        await asyncio.sleep(0.5)
        assert len(leaks) == 1  # once
        assert leaks[0].acquire_stack and "leaky_caller_site" in leaks[0].acquire_stack
        await conn.close()
    finally:
        await close_engine(engine)


async def test_pre_ping_replaces_a_killed_connection(server_target: Target) -> None:
    t = server_target
    assert t.server is not None
    engine = await warm_up(create_async_engine(t.config(min_size=1, max_size=1, pre_ping=True)))
    st = engine_state(engine)
    try:
        victim = st.recorded_ids[0]
        # keep it checked out while killing it, so the maintenance sweep cannot see it first
        async with engine.connect() as conn:
            await t.server.kill(victim)
            await asyncio.sleep(0.2)
            with pytest.raises(Exception):  # noqa: B017 - the driver's own error type
                await conn.exec_driver_sql("SELECT 1")
        async with engine.connect() as conn:  # transparently a fresh connection
            got = (await conn.exec_driver_sql(_id_sql(t))).scalar()
        assert got != victim and got in await t.server.live([got])
    finally:
        await close_engine(engine)
