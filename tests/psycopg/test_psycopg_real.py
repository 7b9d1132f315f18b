"""The psycopg adapter against the real PostgreSQL server: what the suite does not cover
(psycopg_pool's own entry point, error types, reset="full", password providers)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import psycopg
import psycopg_pool
import pytest

from poolbridge import ConnectionEvent, Hooks, PoolConfig, PoolTimeout, TooManyRequests, open_pool
from poolbridge.errors import HookError, PoolClosed

pytestmark = pytest.mark.asyncio


def _name() -> str:
    return f"pbpsy_{uuid.uuid4().hex[:8]}"


async def _alive(pids: set[int], url: str) -> set[int]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as admin:
        cur = await admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE pid = ANY(%s)", (list(pids),)
        )
        return {r[0] for r in await cur.fetchall()}


async def test_native_pool_connection_gets_hooks_stats_and_errors(pg_url: str) -> None:
    events: list[tuple[str, Any]] = []

    def rec(name: str) -> Any:
        return lambda ev: events.append((name, ev.connection_id))

    hooks = Hooks(on_checkout=rec("out"), on_checkin=rec("in"), on_timeout=rec("timeout"))
    cfg = PoolConfig(url=pg_url, min_size=1, max_size=1, acquire_timeout=0.3, name=_name())
    async with open_pool(cfg, adapter="psycopg", hooks=hooks) as pool:
        native = pool.native
        assert isinstance(native, psycopg_pool.AsyncConnectionPool)
        async with native.connection() as conn:
            pid = conn.info.backend_pid
            # psycopg users keep their except clauses; poolbridge users get poolbridge's
            with pytest.raises(psycopg_pool.PoolTimeout) as info:
                await native.getconn()
            assert isinstance(info.value, PoolTimeout)
            assert isinstance(info.value.__cause__, psycopg_pool.PoolTimeout)
            assert cfg.name in str(info.value) and "in use=1" in str(info.value)
        assert events == [("out", pid), ("timeout", None), ("in", pid)]
        st = pool.stats()
        assert st["connection.timeouts"] == 1 and st["connection.count.used"] == 0


async def test_too_many_requests_is_both_types(pg_url: str) -> None:
    cfg = PoolConfig(url=pg_url, min_size=1, max_size=1, max_waiting=1, acquire_timeout=5,
                     name=_name())  # fmt: skip
    async with open_pool(cfg, adapter="psycopg") as pool:
        async with pool.acquire():
            waiter = asyncio.create_task(pool.native.getconn())
            await asyncio.sleep(0.2)
            with pytest.raises(TooManyRequests) as info:
                async with pool.acquire():
                    pass
            assert isinstance(info.value, psycopg_pool.TooManyRequests)
        conn = await waiter
        await pool.native.putconn(conn)
        assert pool.stats()["connection.refused"] == 1


async def test_full_reset_discards_session_state_and_replays_on_connect(pg_url: str) -> None:
    connects: list[int | str | None] = []

    async def on_connect(ev: ConnectionEvent) -> None:
        connects.append(ev.connection_id)
        await ev.connection.execute("SET application_name = 'set_by_hook'")

    cfg = PoolConfig(url=pg_url, min_size=1, max_size=1, reset="full", name=_name(),
                     session={"search_path": "pb_x, public"})  # fmt: skip
    async with open_pool(cfg, adapter="psycopg", hooks=Hooks(on_connect=on_connect)) as pool:
        async with pool.acquire() as conn:
            pid = conn.info.backend_pid
            await conn.execute("SET work_mem = '7MB'")
            await conn.commit()
        async with pool.acquire() as conn:
            assert conn.info.backend_pid == pid  # same connection, cleaned
            cur = await conn.execute(
                "SELECT current_setting('work_mem'), current_setting('search_path'), "
                "current_setting('application_name')"
            )
            work_mem, search_path, app = await cur.fetchone()  # type: ignore[misc]
            assert work_mem != "7MB"
            assert search_path == "pb_x, public"  # startup options survive DISCARD ALL
            assert app == "set_by_hook"  # on_connect replayed after the reset
        assert connects == [pid, pid]


async def test_password_provider_called_per_connection(pg_url: str) -> None:
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        return "not-needed-with-trust-auth"

    cfg = PoolConfig(url=pg_url, min_size=2, max_size=3, password=provider, name=_name())
    async with open_pool(cfg, adapter="psycopg") as pool:
        assert calls == 2
        async with pool.acquire(), pool.acquire(), pool.acquire():
            pass
        assert calls == 3
        assert "not-needed" not in repr(pool) and "not-needed" not in repr(pool.config)


async def test_failing_on_connect_discards_the_connection(pg_url: str) -> None:
    def boom(ev: ConnectionEvent) -> None:
        raise RuntimeError("hook says no")

    cfg = PoolConfig(url=pg_url, min_size=1, max_size=1, acquire_timeout=0.5, name=_name())
    with pytest.raises(HookError) as info:  # at open, as on the engine's stacks
        await open_pool(cfg, adapter="psycopg", hooks=Hooks(on_connect=boom))
    assert "hook says no" in str(info.value)


async def test_close_terminates_checked_out_connections(pg_url: str) -> None:
    cfg = PoolConfig(url=pg_url, min_size=1, max_size=2, name=_name())
    pool = await open_pool(cfg, adapter="psycopg")
    cm = pool.acquire()
    conn = await cm.__aenter__()
    pid = conn.info.backend_pid
    await pool.close(timeout=0.1)
    assert conn.closed
    for _ in range(50):
        if not await _alive({pid}, pg_url):
            break
        await asyncio.sleep(0.05)
    assert not await _alive({pid}, pg_url)
    await cm.__aexit__(None, None, None)  # returning it afterwards is harmless
    st = pool.stats()
    assert st["connection.closed"] == st["connection.created"]
    assert st["connection.count.used"] == 0
    with pytest.raises(PoolClosed):
        async with pool.acquire():
            pass
    with pytest.raises(psycopg_pool.PoolClosed):
        await pool.native.getconn()


async def test_leak_watch_runs_on_the_ticker_and_stops_at_close(pg_url: str) -> None:
    """With leak_timeout the leak checks are posted by the process-wide ticker (no
    ``asyncio.sleep`` of poolbridge's in the loop, pool/ticker.py): registered on the
    pool's loop every quarter of leak_timeout, a held connection is reported, and close()
    unregisters it."""
    leaks: list[Any] = []
    hooks = Hooks(on_leak=leaks.append)
    cfg = PoolConfig(url=pg_url, min_size=1, max_size=1, leak_timeout=0.2, name=_name())
    async with open_pool(cfg, adapter="psycopg", hooks=hooks) as pool:
        native: Any = pool.native
        tick = native._pb_leak_tick
        assert tick is not None and not tick.cancelled
        assert tick.loop is asyncio.get_running_loop()
        assert tick.interval == pytest.approx(0.05)
        async with pool.acquire():
            for _ in range(100):  # up to 5 s
                if leaks:
                    break
                await asyncio.sleep(0.05)
        assert len(leaks) == 1 and leaks[0].held >= 0.2
    assert tick.cancelled and native._pb_leak_tick is None
