"""Limits against real servers: min_size/refill, max_size, acquire_timeout, max_waiting, FIFO."""

from __future__ import annotations

import asyncio
import time

import pytest
import sqlalchemy.exc
from sqlalchemy import text

from poolbridge.adapters.sqlalchemy import (
    close_engine,
    create_async_engine,
    engine_state,
    engine_stats,
    warm_up,
)
from poolbridge.errors import PoolTimeout, TooManyRequests
from poolbridge.pool.hooks import Hooks

from .conftest import Target, eventually

pytestmark = pytest.mark.asyncio


async def test_min_size_exists_after_open_and_is_refilled_after_kill(server_target: Target) -> None:
    t = server_target
    assert t.server is not None
    engine = await warm_up(create_async_engine(t.config(min_size=2, max_size=4)))
    st = engine_state(engine)
    try:
        first = list(st.recorded_ids)
        assert len(first) == 2
        assert await t.server.live(first) == set(first)
        await t.server.kill(first[0])

        async def refilled() -> bool:
            ids = list(st.live_ids.values())
            return len(ids) == 2 and first[0] not in ids and len(await t.server.live(ids)) == 2

        assert await eventually(refilled, timeout=8), (st.recorded_ids, st.live_ids)
        async with engine.connect() as conn:  # and the pool serves
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
    finally:
        await close_engine(engine)


async def test_max_size_never_exceeded_server_side(server_target: Target) -> None:
    t = server_target
    assert t.server is not None
    engine = await warm_up(
        create_async_engine(t.config(min_size=1, max_size=3, acquire_timeout=20))
    )
    st = engine_state(engine)
    high = 0
    stop = False

    async def sample() -> None:
        nonlocal high
        while not stop:
            high = max(high, len(await t.server.live(st.recorded_ids)))  # type: ignore[union-attr]
            await asyncio.sleep(0.01)

    async def work() -> None:
        async with engine.connect() as conn:
            await conn.exec_driver_sql(t.sleep_sql(0.02))

    sampler = asyncio.create_task(sample())
    try:
        await asyncio.gather(*(work() for _ in range(30)))
    finally:
        stop = True
        await sampler
    try:
        assert 1 <= high <= 3
        assert len(st.recorded_ids) <= 3  # never opened more than the cap either
        assert st.recorder.snapshot()["connection.count.used"] == 0
    finally:
        await close_engine(engine)


async def test_acquire_timeout_raises_with_diagnostics_then_serves(target: Target) -> None:
    timeouts: list[object] = []
    cfg = target.config(min_size=0, max_size=2, acquire_timeout=0.4)
    engine = await warm_up(create_async_engine(cfg, hooks=Hooks(on_timeout=timeouts.append)))
    try:
        held = [await engine.connect() for _ in range(2)]
        start = time.monotonic()
        with pytest.raises(PoolTimeout) as info:
            await engine.connect()
        elapsed = time.monotonic() - start
        assert 0.35 <= elapsed < 5
        msg = str(info.value)
        assert cfg.name in msg and "max_size=2" in msg and "in use=2" in msg
        assert "longest held" in msg
        # code written for plain SQLAlchemy keeps working
        assert isinstance(info.value, sqlalchemy.exc.TimeoutError)
        await asyncio.sleep(0.05)
        assert len(timeouts) == 1
        assert engine_state(engine).recorder.snapshot()["connection.timeouts"] == 1
        await held[0].close()
        async with engine.connect() as conn:
            assert (await conn.exec_driver_sql("SELECT 1")).scalar() == 1
        await held[1].close()
    finally:
        await close_engine(engine)


async def test_max_waiting_refuses_at_once(target: Target) -> None:
    cfg = target.config(min_size=1, max_size=1, max_waiting=2, acquire_timeout=5)
    engine = await warm_up(create_async_engine(cfg))
    st = engine_state(engine)
    try:
        holder = await engine.connect()

        async def wait_one() -> None:
            async with engine.connect():
                pass

        waiters = [asyncio.create_task(wait_one()) for _ in range(2)]

        async def two_pending() -> bool:
            return st.recorder.pending == 2

        assert await eventually(two_pending)
        start = time.monotonic()
        with pytest.raises(TooManyRequests):
            await engine.connect()
        assert time.monotonic() - start < 1.0  # at once, not after acquire_timeout
        assert engine_stats(engine)["connection.refused"] == 1
        await holder.close()
        await asyncio.gather(*waiters)
    finally:
        await close_engine(engine)


async def test_fifo_even_against_a_greedy_reacquirer(target: Target) -> None:
    engine = await warm_up(
        create_async_engine(target.config(min_size=1, max_size=1, acquire_timeout=10))
    )
    st = engine_state(engine)
    served: list[str] = []
    try:
        greedy = await engine.connect()

        async def waiter(i: int) -> None:
            async with engine.connect():
                served.append(f"w{i}")
                await asyncio.sleep(0.01)

        tasks = []
        for i in range(4):
            tasks.append(asyncio.create_task(waiter(i)))

            async def queued(n: int = i + 1) -> bool:
                return st.recorder.pending == n

            assert await eventually(queued)
        # the greedy task gives the connection back and asks again at once
        await greedy.close()
        async with engine.connect():
            served.append("greedy")
        await asyncio.gather(*tasks)
        assert served == ["w0", "w1", "w2", "w3", "greedy"]
    finally:
        await close_engine(engine)
