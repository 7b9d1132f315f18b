"""The waiter path: a checkout that finds no idle connection queues in one coroutine
(``Engine._queued``) and is served FIFO. Every way a wait can end is checked on it:
served, cancelled while queued, cancelled after the hand-off, cancelled in an async
on_checkout hook, expired, refused at close; and a handed connection that the server closed
while its previous holder had it is never used."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import poolbridge.engine
from poolbridge.errors import PoolClosed, PoolTimeout
from poolbridge.pool.hooks import ConnectionEvent, Hooks

from .fake import FakeConn, FakeDriver, make_engine, opened
from .storm import assert_accounted, cancel_storm, settle

pytestmark = pytest.mark.asyncio


def _queue_is_empty(engine: Any) -> None:
    """No waiter, no deadline kept, no timer armed, the pending gauge at 0."""
    assert engine.waiting == 0
    assert engine._queue.deadlines == 0
    assert not engine._queue.armed
    assert engine.recorder.pending == 0


async def _acquire_and_hold(engine: Any, release: asyncio.Event, got: list[Any]) -> None:
    async with engine.acquire() as conn:
        got.append(conn)
        await release.wait()


async def test_waiters_are_served_in_join_order_through_one_coroutine() -> None:
    engine = make_engine(min_size=3, max_size=3, acquire_timeout=5)
    async with opened(engine):
        joined: list[int] = []
        served: list[int] = []
        chains: list[list[str]] = []

        async def user(i: int) -> None:
            for _ in range(5):
                joined.append(i)
                async with engine.acquire():
                    served.append(i)
                    await asyncio.sleep(0)

        tasks = [asyncio.create_task(user(i)) for i in range(30)]
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        if not poolbridge.engine.COMPILED:  # compiled coroutines have no cr_await chain
            for t in tasks:
                coro: Any = t.get_coro()
                chain = []
                while coro is not None and hasattr(coro, "cr_await"):
                    chain.append(coro.cr_code.co_name)
                    coro = coro.cr_await
                chains.append(chain)
            # a waiter's task awaits the hand-off one coroutine deep (not _enter -> _get
            # -> _wait); holders are in sleep()
            waiting = [c for c in chains if "sleep" not in c]
            assert len(waiting) >= 27, chains
            assert all(c == ["user", "_queued"] for c in waiting), waiting
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        assert served == joined  # FIFO: nobody barged, nobody was skipped
        assert engine.recorder.snapshot()["connection.wait_time"]["count"] == 150
        assert_accounted(engine)
        _queue_is_empty(engine)


async def test_getconn_waiters_are_served_in_join_order() -> None:
    engine = make_engine(min_size=2, max_size=2, acquire_timeout=5)
    async with opened(engine):
        joined: list[int] = []
        served: list[int] = []

        async def user(i: int) -> None:
            for _ in range(4):
                joined.append(i)
                conn = await engine.getconn()
                served.append(i)
                await asyncio.sleep(0)
                await engine.putconn(conn)

        await asyncio.wait_for(asyncio.gather(*(user(i) for i in range(12))), 10)
        assert served == joined
        assert_accounted(engine)
        _queue_is_empty(engine)


async def test_waiter_cancelled_while_queued_leaves_no_trace() -> None:
    engine = make_engine(min_size=1, max_size=1, acquire_timeout=5)
    async with opened(engine):
        release = asyncio.Event()
        got: list[Any] = []
        holder = asyncio.create_task(_acquire_and_hold(engine, release, got))
        await asyncio.sleep(0)
        waiter = asyncio.create_task(_acquire_and_hold(engine, asyncio.Event(), []))
        await asyncio.sleep(0)
        assert engine.waiting == 1 and engine._queue.armed
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        _queue_is_empty(engine)
        release.set()
        await holder
        assert engine.idle_count == 1  # nobody waits: the connection went idle
        assert_accounted(engine)


async def test_acquire_waiter_cancelled_after_the_hand_off_passes_it_on() -> None:
    engine = make_engine(min_size=1, max_size=1, acquire_timeout=5)
    async with opened(engine):
        conn = await engine.getconn()
        got1: list[Any] = []
        got2: list[Any] = []
        release2 = asyncio.Event()
        w1 = asyncio.create_task(_acquire_and_hold(engine, asyncio.Event(), got1))
        w2 = asyncio.create_task(_acquire_and_hold(engine, release2, got2))
        await asyncio.sleep(0)
        assert engine.waiting == 2
        await engine.putconn(conn)  # handed to w1's future...
        w1.cancel()  # ...but w1 is cancelled before it runs
        with pytest.raises(asyncio.CancelledError):
            await w1
        await asyncio.sleep(0)
        assert got1 == [] and got2 == [conn]  # passed on to the next waiter
        release2.set()
        await w2
        assert_accounted(engine)
        _queue_is_empty(engine)


async def test_waiter_cancelled_in_an_async_on_checkout_hook_undoes_the_checkout() -> None:
    entered = asyncio.Event()
    block = asyncio.Event()
    calls: list[int] = []

    async def on_checkout(event: ConnectionEvent) -> None:
        calls.append(1)
        if len(calls) == 2:  # the waiter's checkout, after its wake-up
            entered.set()
            await block.wait()

    engine = make_engine(hooks=Hooks(on_checkout=on_checkout), min_size=1, max_size=1)
    async with opened(engine):
        conn = await engine.getconn()
        waiter = asyncio.create_task(engine.getconn())
        other = asyncio.create_task(engine.getconn())
        await asyncio.sleep(0)
        await engine.putconn(conn)  # handed to `waiter`, whose hook then blocks
        await asyncio.wait_for(entered.wait(), 1)
        assert engine.recorder.used == 1
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        # the checkout was undone and the connection went on to the next waiter
        assert await asyncio.wait_for(other, 1) is conn
        await engine.putconn(conn)
        assert_accounted(engine)
        _queue_is_empty(engine)


async def test_waiter_expires_with_pool_timeout_and_on_timeout() -> None:
    timeouts: list[ConnectionEvent] = []
    engine = make_engine(
        hooks=Hooks(on_timeout=timeouts.append), min_size=1, max_size=1, acquire_timeout=0.1
    )
    async with opened(engine):
        held = await engine.getconn()
        with pytest.raises(PoolTimeout) as info:
            async with engine.acquire():
                pytest.fail("no connection was free")
        assert "waiting=1" in str(info.value) and info.value.__cause__ is None
        with pytest.raises(PoolTimeout):
            await engine.getconn(timeout=0.05)
        assert engine.recorder.timeouts == 2 and len(timeouts) == 2
        _queue_is_empty(engine)
        await engine.putconn(held)
        assert_accounted(engine)


async def test_close_wakes_every_waiter_with_pool_closed() -> None:
    engine = make_engine(min_size=2, max_size=2, acquire_timeout=5)
    await engine.open()
    held = [await engine.getconn(), await engine.getconn()]
    waiters = [
        asyncio.create_task(_acquire_and_hold(engine, asyncio.Event(), [])) for _ in range(3)
    ]
    waiters.append(asyncio.create_task(engine.getconn()))
    await asyncio.sleep(0)
    assert engine.waiting == 4
    await engine.close(timeout=0)
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(r, PoolClosed) for r in results), results
    _queue_is_empty(engine)
    for conn in held:
        await engine.putconn(conn)  # harmless after close
    assert engine.recorder.open == 0


class _NarrowCheckinDriver(FakeDriver):
    """Its checkin check, like asyncmy's ``reusable()``, looks only at the transaction
    state: a connection the server closed while it was held passes it, and only the
    checkout's ``is_closed()`` sees the closure."""

    def reusable(self, conn: FakeConn) -> bool:
        return conn.in_txn is False


async def test_handed_connection_the_server_closed_while_held_is_not_used() -> None:
    driver = _NarrowCheckinDriver()
    engine = make_engine(driver, min_size=1, max_size=1, acquire_timeout=5)
    async with opened(engine):
        first = await engine.getconn()
        got: list[Any] = []
        release = asyncio.Event()
        waiter = asyncio.create_task(_acquire_and_hold(engine, release, got))
        await asyncio.sleep(0)
        first.closed = True  # the server hung up while `first` was held
        await engine.putconn(first)  # the fast checkin passes it and hands it over
        await asyncio.wait_for(_until(lambda: got), 2)
        # the waiter checked it at its wake-up, retired it and got a new connection
        assert got[0] is not first and not got[0].closed
        assert first.id not in engine.server_ids()
        release.set()
        await waiter
        await settle(engine)
        assert_accounted(engine)
        assert driver.max_concurrent <= 1  # max_size held while replacing it


async def _until(predicate: Any) -> None:
    while not predicate():
        await asyncio.sleep(0.001)


async def test_cancellation_storm_through_an_async_on_checkout_hook() -> None:
    """Cancelled at any step: while queued, between the hand-off and the wake-up, inside
    the hook's await after the wake-up, or while holding: nothing lost or handed twice."""

    async def on_checkout(event: ConnectionEvent) -> None:
        await asyncio.sleep(0)

    driver = FakeDriver()
    engine = make_engine(
        driver, hooks=Hooks(on_checkout=on_checkout), min_size=1, max_size=3, acquire_timeout=5
    )
    async with opened(engine):
        outcomes = await cancel_storm(engine, 2000, seed=7, max_delay_steps=8)
        assert outcomes["ok"] > 0 and outcomes["cancelled"] > 0
        await settle(engine)
        assert_accounted(engine)
        _queue_is_empty(engine)
        live = {c.id for c in driver.opened if not c.closed}
        assert live == set(engine.server_ids())
        assert driver.max_concurrent <= 3
