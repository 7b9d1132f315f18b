"""SQLAlchemy's maintenance (BridgeState) runs on the process-wide ticker: no timer in the loop.

Why it matters: while any timer is scheduled in an asyncio loop, every loop iteration
computes a select timeout from it (~2k CPU instructions, docs/performance.md). The
engine's maintenance used to wait for its wake-up event under ``asyncio.timeout(interval)``,
a timer armed for the engine's whole life; the ticker thread (pool/ticker.py) posts its
ticks to the loop instead.

As in tests/engine/test_ticker.py, asyncio has no public way to list a loop's timers: the
busy-pool test reads the stdlib loop's private ``_scheduled`` heap (the ``TimerHandle``
objects ``call_later``/``call_at``, ``asyncio.sleep`` and ``asyncio.timeout`` push there),
a fact about the test's own loop used only here; poolbridge itself never reads it. It runs
on the stacks whose driver keeps no timer of its own in the loop: asyncpg's statement
cache schedules one per prepared statement (and the PostgreSQL targets' admin connection
is asyncpg), so only MySQL and SQLite stacks are sampled.
"""

from __future__ import annotations

import asyncio
import gc
import time
import weakref
from typing import Any

import pytest

from poolbridge.adapters.sqlalchemy import close_engine, create_async_engine, engine_state, warm_up
from poolbridge.pool import ticker as ticker_module

from .conftest import Target, eventually

pytestmark = pytest.mark.asyncio

TIMEOUT = 10.0  # generous bound for anything that must happen "soon"


def _live_timers(loop: asyncio.AbstractEventLoop) -> list[Any]:
    """The loop's scheduled, not cancelled timer handles (stdlib loop: private heap)."""
    return [h for h in loop._scheduled if not h.cancelled()]  # type: ignore[attr-defined]


def _live_ticks() -> list[Any]:
    t = ticker_module.ticker()
    with t._cond:
        return [tick for ref in t._ticks.values() if (tick := ref()) is not None]


async def _select1(engine: Any) -> None:
    async with engine.connect() as conn:
        await conn.exec_driver_sql("SELECT 1")


async def test_busy_engine_keeps_no_timer_and_maintenance_still_reaps(target: Target) -> None:
    """Five idle connections above min_size go after max_idle while one task keeps running
    queries; then, busy for several more maintenance intervals, after no query is a timer
    scheduled in the loop (a reaped connection's close may be bounded by a timer while it
    runs: that is why the first phase is not sampled)."""
    t = target
    if t.backend == "postgresql":
        pytest.skip("asyncpg (the driver, and the admin connection) keeps timers in the loop")
    loop = asyncio.get_running_loop()
    ticker = ticker_module.ticker()
    engine = await warm_up(create_async_engine(t.config(min_size=1, max_size=6, max_idle=0.1)))
    state = engine_state(engine)
    try:
        held = [await engine.connect() for _ in range(6)]
        for conn in held:
            await conn.close()
        pool: Any = engine.sync_engine.pool
        assert pool.open_slots == 6
        deadline = time.monotonic() + TIMEOUT
        while pool.open_slots > 1 and time.monotonic() < deadline:
            await _select1(engine)
        assert pool.open_slots == 1, "idle connections above min_size were not reaped"
        if t.server is not None:  # the server agrees: one of the six is left
            assert len(await t.server.live(state.recorded_ids)) == 1
        for _ in range(3):
            await asyncio.sleep(0)  # the last close's bound (if any) is cancelled and popped
        timers_seen: list[str] = []
        wakeups = ticker.wakeups
        busy_until = time.monotonic() + 0.2  # eight maintenance intervals of 25 ms, busy
        while time.monotonic() < busy_until:
            await _select1(engine)
            timers_seen.extend(repr(h) for h in _live_timers(loop))
        assert timers_seen == [], f"timers in the busy engine's loop: {timers_seen[:3]}"
        assert ticker.wakeups > wakeups  # the maintenance was scheduled meanwhile
        assert pool.open_slots == 1
    finally:
        await close_engine(engine)


async def test_the_schedule_follows_dispose_use_and_close(target: Target) -> None:
    """Registered on the engine's loop while the engine is in use, every quarter of
    max_idle; gone after ``engine.dispose()`` (nothing refills), back at the next use
    (which refills to min_size in the background), gone for good at close."""
    engine = await warm_up(create_async_engine(target.config(min_size=2, max_idle=0.4)))
    state = engine_state(engine)
    try:
        tick = state._ticking
        assert tick is not None and tick in _live_ticks()
        assert tick.loop is asyncio.get_running_loop()
        assert tick.interval == pytest.approx(0.1)
        await engine.dispose()
        assert tick.cancelled and state._ticking is None and state._task is None
        assert tick not in _live_ticks()
        pool: Any = engine.sync_engine.pool
        await asyncio.sleep(0.3)  # three intervals: nothing refilled the disposed pool
        assert pool.open_slots == 0
        await _select1(engine)
        again = state._ticking
        assert again is not None and again is not tick and again in _live_ticks()

        async def refilled() -> bool:
            return bool(engine.sync_engine.pool.open_slots >= 2)

        assert await eventually(refilled, timeout=TIMEOUT)
    finally:
        await close_engine(engine)
    assert again.cancelled and state._ticking is None and again not in _live_ticks()


async def test_a_failed_warm_up_leaves_nothing_scheduled(sqlite_url: str) -> None:
    from poolbridge.config.model import PoolConfig
    from poolbridge.errors import ConnectError

    config = PoolConfig(
        url="mysql://root@127.0.0.1:1/test", driver="asyncmy", min_size=1, acquire_timeout=0.5
    )
    engine = create_async_engine(config)
    state = engine_state(engine)
    with pytest.raises(ConnectError):
        await warm_up(engine)
    assert state._ticking is None and state._task is None
    await engine.dispose()


async def test_an_abandoned_engine_is_collected_with_its_schedule(sqlite_url: str) -> None:
    from poolbridge.config.model import PoolConfig

    config = PoolConfig(url=sqlite_url, driver="aiosqlite", min_size=1, max_idle=0.1)
    engine = await warm_up(create_async_engine(config))
    await _select1(engine)
    state = engine_state(engine)
    tick = weakref.ref(state._ticking)  # type: ignore[arg-type]
    ref = weakref.ref(state)
    # the driver connections, closed at the end (aiosqlite's worker thread would outlive
    # the test's loop)
    drivers = [rec.driver_connection for rec in state.live_ids]
    assert drivers
    del engine, state
    try:
        await asyncio.sleep(0.1)  # posts already queued in the loop run (and let go)
        gc.collect()
        assert ref() is None, "the schedule kept the abandoned engine alive"
        assert tick() is None
    finally:
        for conn in drivers:
            await conn.close()
