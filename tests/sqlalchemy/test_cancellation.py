"""Cancellation through SQLAlchemy's own API, at every await of each phase: a task using
``AsyncEngine.connect()`` or ``AsyncSession`` is cancelled after 0, 1, 2, ... loop turns into
its connect, execute, commit or close, until the phase completes uncancelled. Afterwards
nothing is checked out, no server connection exists beyond the pool's own, the pool still
serves, and closing it leaves none; each backend's run is bounded in time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from time import monotonic

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from poolbridge.adapters.sqlalchemy import close_engine, create_async_engine, engine_state, warm_up

from .conftest import Target, eventually

pytestmark = pytest.mark.asyncio

PHASES = ("connect", "execute", "commit", "close")
MAX_STEPS = 400  # no phase takes this many loop turns on a local server


async def _engine_connect(engine: AsyncEngine, phase: str, entered: asyncio.Event) -> None:
    def at(name: str) -> None:
        if name == phase:
            entered.set()

    at("connect")
    conn = await engine.connect()
    try:
        at("execute")
        await conn.execute(text("SELECT 1"))
        at("commit")
        await conn.commit()
    finally:
        at("close")
        await conn.close()


async def _session(engine: AsyncEngine, phase: str, entered: asyncio.Event) -> None:
    def at(name: str) -> None:
        if name == phase:
            entered.set()

    session = AsyncSession(engine)
    try:
        at("connect")
        await session.connection()
        at("execute")
        await session.execute(text("SELECT 1"))
        at("commit")
        await session.commit()
    finally:
        at("close")
        await session.close()


Work = Callable[[AsyncEngine, str, asyncio.Event], Awaitable[None]]


async def _cancel_everywhere(engine: AsyncEngine, work: Work, phase: str) -> int:
    """Cancel ``work`` k loop turns into ``phase`` for k = 0, 1, ...; the number of
    cancellations that landed."""
    landed = 0
    for k in range(MAX_STEPS):
        entered = asyncio.Event()
        task = asyncio.ensure_future(work(engine, phase, entered))
        await entered.wait()
        for _ in range(k):
            await asyncio.sleep(0)
        if task.done():
            await task
            return landed
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            landed += 1
    raise AssertionError(f"{phase} never completed within {MAX_STEPS} loop turns")


@pytest.mark.parametrize("entry", ["engine.connect", "AsyncSession"])
async def test_cancel_at_every_await(target: Target, entry: str) -> None:
    t = target
    config = t.config(min_size=1, max_size=3, acquire_timeout=10)
    engine = await warm_up(create_async_engine(config))
    st = engine_state(engine)
    work: Work = _engine_connect if entry == "engine.connect" else _session
    started = monotonic()
    try:
        landed = {}
        for phase in PHASES:
            landed[phase] = await _cancel_everywhere(engine, work, phase)
            assert not st.checked_out, phase

            async def none_out() -> bool:
                # a refill to min_size in flight counts as checked out, as in QueuePool
                return engine.sync_engine.pool.checkedout() == 0

            assert await eventually(none_out, timeout=3), (phase, engine.sync_engine.pool.status())
        assert landed["execute"] > 0  # the scenario reached inside the query
        # the pool still serves, and nothing is open server-side beyond its own connections
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
        if t.server is not None:
            live = t.server.live

            async def only_pool_connections() -> bool:
                return await live(st.recorded_ids) == {int(i) for i in st.live_ids.values()}  # type: ignore[arg-type]

            assert await eventually(only_pool_connections), (
                await live(st.recorded_ids),
                st.live_ids,
            )
    finally:
        await close_engine(engine)
    elapsed = monotonic() - started
    assert elapsed < 30, f"cancellation scenarios took {elapsed:.1f} s"
    if t.server is not None:
        server = t.server

        async def none_left() -> bool:
            return not await server.live(st.recorded_ids)

        assert await eventually(none_left), await server.live(st.recorded_ids)


async def test_connection_of_a_cancelled_caller_is_pooled(target: Target) -> None:
    """A caller cancelled while its connection is being opened leaves; the connection, once
    open, goes to the pool instead of being thrown away, so the next caller does not pay for
    a new connect (or starve when every caller is cancelled mid-connect)."""
    from poolbridge.pool.hooks import Hooks

    async def slow_connect(ev: object) -> None:
        await asyncio.sleep(0.2)

    engine = await warm_up(
        create_async_engine(
            target.config(min_size=0, max_size=1), hooks=Hooks(on_connect=slow_connect)
        )
    )
    st = engine_state(engine)
    try:
        task = asyncio.ensure_future(engine.connect())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        async def pooled() -> bool:
            return engine.sync_engine.pool.checkedin() == 1

        assert await eventually(pooled, timeout=3), engine.sync_engine.pool.status()
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
        assert st.recorder.snapshot()["connection.created"] == 1
    finally:
        await close_engine(engine)
