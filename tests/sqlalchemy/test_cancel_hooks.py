"""Cancellation storms and hooks through SQLAlchemy's own entry points."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from poolbridge.adapters.sqlalchemy import (
    adapter,
    close_engine,
    create_async_engine,
    engine_state,
    warm_up,
)
from poolbridge.pool.hooks import ConnectionEvent, Hooks

from .conftest import Target, eventually

pytestmark = pytest.mark.asyncio


async def test_200_cancelled_tasks_leak_nothing(target: Target) -> None:
    engine = await warm_up(
        create_async_engine(target.config(min_size=1, max_size=3, acquire_timeout=30))
    )
    st = engine_state(engine)
    rng = random.Random(4)

    async def work() -> None:
        async with engine.connect() as conn:
            await conn.exec_driver_sql(target.sleep_sql(0.05))
            await conn.exec_driver_sql("SELECT 1")

    try:
        tasks = [asyncio.create_task(work()) for _ in range(200)]
        for task in tasks:  # cancel at random moments: queued, connecting, mid-query
            if rng.random() < 0.3:
                await asyncio.sleep(rng.uniform(0, 0.01))
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

        async def settled() -> bool:
            snap = st.recorder.snapshot()
            return (
                snap["connection.count.used"] == 0
                and snap["connection.pending_requests"] == 0
                and not st._background
                and st.pool is not None
                and 1 <= len(st.live_ids) == st.pool.open_slots == st.pool.idle_count
            )

        assert await eventually(settled, timeout=10), st.recorder.snapshot()
        pool = st.pool
        assert pool is not None
        snap = st.recorder.snapshot()
        live = list(st.live_ids.values())
        assert 1 <= len(live) <= 3
        assert snap["connection.count.idle"] == len(live) == pool.open_slots == pool.idle_count
        assert snap["connection.created"] - snap["connection.closed"] == len(live)
        if target.server is not None:
            # the server notices a terminated socket once its current statement ends
            async def server_agrees() -> bool:
                return await target.server.live(st.recorded_ids) == set(live)  # type: ignore[union-attr]

            assert await eventually(server_agrees, timeout=5), (
                await target.server.live(st.recorded_ids),
                live,
            )
        # and all max_size connections can still be used at once
        conns = [await engine.connect() for _ in range(3)]
        for c in conns:
            assert (await c.exec_driver_sql("SELECT 1")).scalar() == 1
            await c.close()
    finally:
        await close_engine(engine, timeout=2)


def _recorder(log: list[tuple[str, Any]], asynchronous: bool) -> Hooks:
    def make(name: str) -> Any:
        if asynchronous:

            async def hook(ev: ConnectionEvent) -> None:
                await asyncio.sleep(0)
                log.append((name, ev.connection_id))

        else:

            def hook(ev: ConnectionEvent) -> None:
                log.append((name, ev.connection_id))

        return hook

    return Hooks(
        on_connect=make("connect"),
        on_checkout=make("checkout"),
        on_checkin=make("checkin"),
        on_close=make("close"),
    )


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
async def test_hooks_fire_in_order_through_engine_and_session(
    target: Target, asynchronous: bool
) -> None:
    log: list[tuple[str, Any]] = []
    pool = await adapter.open(target.config(min_size=1, max_size=2), _recorder(log, asynchronous))
    engine = pool.native
    points = adapter.entry_points(pool)
    assert set(points) == {"handle", "engine.connect", "AsyncSession"}
    for name in ("handle", "engine.connect", "AsyncSession"):
        async with points[name]() as run:
            assert await run("SELECT 1") == 1
    async with AsyncSession(engine) as session:  # the ORM's own way, no poolbridge glue
        await session.connection()
    await pool.close()
    names = [n for n, _ in log]
    sid = pool.state.recorded_ids[0]
    assert names == ["connect"] + ["checkout", "checkin"] * 4 + ["close"]
    assert all(cid == sid for _, cid in log)
    snap = pool.stats()
    assert snap["connection.created"] == snap["connection.closed"] == 1
    assert snap["connection.use_time"]["count"] == 4
    assert snap["connection.hook_failures"] == 0


async def test_failing_on_connect_discards_connection(target: Target) -> None:
    from poolbridge.errors import HookError

    calls = 0

    def boom(ev: ConnectionEvent) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("no")

    engine = await warm_up(
        create_async_engine(target.config(min_size=1, max_size=2), hooks=Hooks(on_connect=boom))
    )
    st = engine_state(engine)
    try:
        first = await engine.connect()
        with pytest.raises(HookError):
            await engine.connect()  # second physical connection: hook fails
        assert st.pool is not None and st.pool.open_slots == 1  # the slot was given back
        if target.server is not None:

            async def only_first() -> bool:
                return len(await target.server.live(st.recorded_ids)) == 1  # type: ignore[union-attr]

            assert await eventually(only_first)
        async with engine.connect() as conn:  # third try succeeds
            assert (await conn.exec_driver_sql("SELECT 1")).scalar() == 1
        await first.close()
    finally:
        await close_engine(engine)
