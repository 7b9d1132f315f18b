"""Engine invariants on the real drivers (PostgreSQL, MariaDB, SQLite)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from poolbridge.engine.checkout import LIFETIME_JITTER
from poolbridge.engine.handle import EnginePool
from poolbridge.errors import PoolClosed, PoolTimeout, TooManyRequests
from poolbridge.pool.hooks import ConnectionEvent, Hooks

from .fake import eventually
from .real import ADAPTERS, Server, Target, target_for
from .storm import settle

pytestmark = [pytest.mark.asyncio, pytest.mark.server]


@pytest.fixture(params=ADAPTERS)
def target(request: pytest.FixtureRequest) -> Target:
    return target_for(request, request.param)


async def test_fifo_order_under_contention(target: Target) -> None:
    pool = await target.open(min_size=1, max_size=1)
    try:
        first = await pool.engine.getconn()
        order: list[int] = []

        async def waiter(i: int) -> None:
            async with pool.acquire() as conn:
                order.append(i)
                assert await target.scalar(conn, "SELECT 1") == 1

        tasks = []
        for i in range(5):
            tasks.append(asyncio.create_task(waiter(i)))
            await asyncio.sleep(0)
        await pool.engine.putconn(first)
        await asyncio.gather(*tasks)
        assert order == list(range(5))
    finally:
        await pool.close()


async def test_acquire_timeout_diagnostics_and_max_waiting(target: Target) -> None:
    pool = await target.open(min_size=1, max_size=1, acquire_timeout=0.2, max_waiting=1)
    try:
        async with pool.acquire():
            with pytest.raises(PoolTimeout) as info:
                async with pool.acquire():
                    pass
            assert "max_size=1" in str(info.value) and "in use=1" in str(info.value)
            assert pool.name in str(info.value)
            waiter = asyncio.create_task(pool.engine.getconn(timeout=5))
            await asyncio.sleep(0)
            with pytest.raises(TooManyRequests):
                await pool.engine.getconn()
        await pool.engine.putconn(await waiter)
        stats = pool.stats()
        assert stats["connection.timeouts"] == 1 and stats["connection.refused"] == 1
    finally:
        await pool.close()


async def test_no_lock_held_across_a_slow_connect(target: Target) -> None:
    pool = await target.open(min_size=1, max_size=2)
    gate = asyncio.Event()
    shim: Any = pool.engine.driver
    real_connect = shim.connect

    async def slow_connect(config: Any, timeout: float) -> Any:
        await gate.wait()
        return await real_connect(config, timeout)

    shim.connect = slow_connect
    try:
        a = await pool.engine.getconn()
        b_task = asyncio.create_task(pool.engine.getconn())
        await asyncio.sleep(0.05)
        assert pool.engine._opening == 1 and not b_task.done()
        await asyncio.wait_for(pool.engine.putconn(a), 5)
        b = await asyncio.wait_for(b_task, 5)
        assert b is a
        assert await target.scalar(b, "SELECT 1") == 1
        await pool.engine.putconn(b)
        gate.set()
        await settle(pool.engine)
    finally:
        gate.set()
        await pool.close()


async def test_kill_refill_and_pre_ping(target: Target) -> None:
    if target.backend == "sqlite":
        pytest.skip("SQLite has no server that can kill a connection")
    pool = await target.open(min_size=2, max_size=3, pre_ping=True)
    try:
        async with Server(target) as server:
            ids = pool.engine.server_ids()
            assert await server.alive(ids) == set(ids)
            async with pool.acquire() as c1, pool.acquire() as c2:  # not fresh any more
                assert await target.scalar(c1, "SELECT 1") == await target.scalar(c2, "SELECT 1")
            for ident in ids:
                await server.kill(ident)
            await eventually(lambda: True)
            async with pool.acquire() as conn:  # pre-ping replaces the dead ones
                assert await target.scalar(conn, "SELECT 1") == 1
            await settle(pool.engine)
            new_ids = pool.engine.server_ids()
            assert not set(new_ids) & set(ids)
            assert await server.alive(new_ids) == set(new_ids)
            assert len(new_ids) >= 2
    finally:
        await pool.close()


async def test_connection_error_mid_use_is_discarded(target: Target) -> None:
    if target.backend == "sqlite":
        pytest.skip("SQLite has no server that can kill a connection")
    pool = await target.open(min_size=1, max_size=1)
    try:
        async with Server(target) as server:
            with pytest.raises(Exception) as info:
                async with pool.acquire() as conn:
                    victim = pool.engine.server_id_of(conn)
                    await server.kill(victim)
                    await asyncio.sleep(0.05)
                    await target.scalar(conn, "SELECT 1")
            assert info.value is not None
            await settle(pool.engine)
            assert victim not in pool.engine.server_ids()  # discarded, not handed out again
            async with pool.acquire() as conn:
                assert pool.engine.server_id_of(conn) != victim
                assert await target.scalar(conn, "SELECT 1") == 1
    finally:
        await pool.close()


async def test_failing_server_never_wedges_waiters(target: Target, tmp_path: Any) -> None:
    if target.backend == "sqlite":
        url = f"sqlite:///{tmp_path}/missing-dir/db.sqlite"
    else:
        scheme = "postgresql" if target.backend == "postgresql" else "mysql"
        url = f"{scheme}://root@127.0.0.1:1/test"
    pool = await target.open(url=url, min_size=0, max_size=2, acquire_timeout=1.0)
    try:
        results = await asyncio.wait_for(
            asyncio.gather(*(pool.engine.getconn() for _ in range(4)), return_exceptions=True),
            15,
        )
        assert all(isinstance(r, Exception) for r in results), results
        assert pool.stats()["connection.errors"] >= 1
    finally:
        await pool.close()


async def test_rollback_reset_undoes_an_open_transaction(target: Target) -> None:
    table = f"pbeng_{uuid.uuid4().hex[:10]}"
    pool = await target.open(min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            await target.execute(conn, f"CREATE TABLE {table} (i INTEGER)")
            if target.adapter == "aiomysql":
                await conn.commit()
        async with pool.acquire() as conn:
            first = pool.engine.server_id_of(conn)
            await target.begin(conn)
            await target.execute(conn, f"INSERT INTO {table} VALUES (1)")
            assert pool.engine.driver.in_transaction(conn) is True
        async with pool.acquire() as conn:
            assert pool.engine.server_id_of(conn) == first  # kept, not replaced
            assert pool.engine.driver.in_transaction(conn) is not True
            assert await target.scalar(conn, f"SELECT count(*) FROM {table}") == 0
            await target.execute(conn, f"DROP TABLE {table}")
            if target.adapter == "aiomysql":
                await conn.commit()
    finally:
        await pool.close()


async def test_full_reset(target: Target) -> None:
    connects: list[ConnectionEvent] = []
    hooks = Hooks(on_connect=connects.append)
    pool = await target.open(hooks, min_size=1, max_size=1, reset="full")
    try:
        async with pool.acquire() as conn:
            first = pool.engine.server_id_of(conn)
            if target.backend == "postgresql":
                await target.scalar(conn, "SELECT set_config('search_path', 'pb_x', false)")
        await settle(pool.engine)
        async with pool.acquire() as conn:
            second = pool.engine.server_id_of(conn)
            if target.backend == "postgresql":  # reset in place, session settings kept
                assert second == first
                assert await target.scalar(conn, "SHOW search_path") != "pb_x"
                assert await target.scalar(conn, "SHOW application_name") == pool.name
                assert [e.connection_id for e in connects] == [first, first]
            else:  # no full reset in the driver: the connection is replaced
                assert second != first
                assert [e.connection_id for e in connects] == [first, second]
    finally:
        await pool.close()


async def test_max_idle_reaps_only_above_min_size_server_side(target: Target) -> None:
    pool = await target.open(min_size=1, max_size=3, max_idle=0.2)
    try:
        async with pool.acquire(), pool.acquire(), pool.acquire():
            pass
        ids = set(pool.engine.server_ids())
        assert len(ids) == 3
        await eventually(lambda: len(pool.engine.server_ids()) == 1, what="reaped to min")
        await asyncio.sleep(0.5)
        await settle(pool.engine)
        assert len(pool.engine.server_ids()) == 1
        async with Server(target) as server:
            if server.has_server:
                assert await server.alive(ids) == set(pool.engine.server_ids())
    finally:
        await pool.close()


async def test_lifetime_jitter_spread(target: Target) -> None:
    pool = await target.open(min_size=3, max_size=3, max_lifetime=100.0)
    try:
        lives = [c.expires - c.created for c in pool.engine._conns.values()]
        assert all(100.0 * (1 - LIFETIME_JITTER) <= life <= 100.0 for life in lives)
        assert len({round(life, 6) for life in lives}) == 3
    finally:
        await pool.close()


async def test_stats_agree_with_server_and_close_drains(target: Target) -> None:
    pool: EnginePool = await target.open(min_size=2, max_size=3)
    async with Server(target) as server:
        held = await pool.engine.getconn()
        other = await pool.engine.getconn()
        third = await pool.engine.getconn()
        await pool.engine.putconn(third)
        stats = pool.stats()
        ids = pool.engine.server_ids()
        assert stats["connection.count.used"] == 2 and stats["connection.count.idle"] == 1
        if server.has_server:
            assert await server.alive(ids) == set(ids)
            assert len(ids) == stats["connection.count.used"] + stats["connection.count.idle"]

        async def give_back() -> None:
            await asyncio.sleep(0.05)
            await pool.engine.putconn(other)

        task = asyncio.create_task(give_back())
        await pool.close(timeout=0.5)  # `other` drains, `held` is terminated
        await task
        assert pool.closed
        with pytest.raises(PoolClosed):
            async with pool.acquire():
                pass
        await pool.engine.putconn(held)
        if server.has_server:
            await eventually(lambda: True)
            for _ in range(50):  # terminated sockets take a moment to vanish server-side
                if not await server.alive(ids):
                    break
                await asyncio.sleep(0.05)
            assert await server.alive(ids) == set()
        stats = pool.stats()
        assert stats["connection.count.used"] == 0
        assert stats["connection.created"] == stats["connection.closed"]
