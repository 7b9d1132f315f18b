"""Engine invariants on a fake driver: ordering, sizing, timeouts, reset, hooks, close."""

from __future__ import annotations

import asyncio
import logging

import pytest

from poolbridge.config.model import RetryPolicy
from poolbridge.engine.checkout import LIFETIME_JITTER
from poolbridge.errors import HookError, PoolClosed, PoolTimeout, TooManyRequests
from poolbridge.pool.hooks import ConnectionEvent, Hooks

from .fake import FakeConn, FakeDriver, eventually, make_engine, opened
from .storm import settle

pytestmark = pytest.mark.asyncio


async def test_open_warms_min_size() -> None:
    driver = FakeDriver()
    async with opened(make_engine(driver, min_size=2, max_size=4)) as engine:
        assert driver.open_now == 2
        assert engine.idle_count == 2
        assert engine.recorder.created == 2


async def test_fifo_hand_off_order() -> None:
    async with opened(make_engine(min_size=1, max_size=1)) as engine:
        first = await engine.getconn()
        order: list[int] = []

        async def waiter(i: int) -> None:
            conn = await engine.getconn()
            order.append(i)
            await asyncio.sleep(0)
            await engine.putconn(conn)

        tasks = []
        for i in range(6):
            tasks.append(asyncio.create_task(waiter(i)))
            await asyncio.sleep(0)  # each one queued before the next
        assert engine.waiting == 6
        await engine.putconn(first)
        await asyncio.gather(*tasks)
        assert order == list(range(6))


async def test_greedy_reacquirer_does_not_barge() -> None:
    async with opened(make_engine(min_size=1, max_size=1)) as engine:
        events: list[str] = []
        conn = await engine.getconn()
        waiter = asyncio.create_task(engine.getconn())
        await asyncio.sleep(0)
        assert engine.waiting == 1
        # the greedy holder releases and re-acquires without yielding in between
        await engine.putconn(conn)
        greedy = asyncio.create_task(engine.getconn())
        got = await waiter
        events.append("waiter")
        assert got is conn
        assert not greedy.done()
        await engine.putconn(got)
        again = await greedy
        events.append("greedy")
        await engine.putconn(again)
        assert events == ["waiter", "greedy"]


async def test_hard_max_size_counts_connections_being_opened() -> None:
    driver = FakeDriver()
    driver.connect_yields = 5
    async with opened(make_engine(driver, min_size=0, max_size=3)) as engine:

        async def use() -> None:
            async with engine.acquire():
                await asyncio.sleep(0.001)

        await asyncio.gather(*(use() for _ in range(40)))
        assert driver.max_concurrent <= 3
        assert len(driver.opened) <= 3


async def test_refill_to_min_size_after_failures_and_kills() -> None:
    driver = FakeDriver()
    retry = RetryPolicy(attempts=4, initial_backoff=0.01, max_backoff=0.02)
    engine = make_engine(driver, min_size=2, max_size=4, retry=retry)
    async with opened(engine):
        conn = await engine.getconn()
        conn.closed = True  # killed while in use; the driver notices
        driver.fail_next = 2  # the refill's first two attempts fail
        await engine.putconn(conn)
        await settle(engine)
        assert driver.open_now == 2
        assert engine.recorder.retries >= 2
        assert engine.recorder.errors >= 2


async def test_lifetime_jitter_spread() -> None:
    async with opened(make_engine(min_size=20, max_size=20, max_lifetime=100.0)) as engine:
        lifetimes = [c.expires - c.created for c in engine._conns.values()]
        assert all(100.0 * (1 - LIFETIME_JITTER) <= life <= 100.0 for life in lifetimes)
        assert max(lifetimes) - min(lifetimes) > 1.0  # spread, not one expiry instant


async def test_expired_connection_replaced_at_checkin() -> None:
    driver = FakeDriver()
    async with opened(make_engine(driver, min_size=1, max_size=2, max_lifetime=0.2)) as engine:
        conn = await engine.getconn()
        await asyncio.sleep(0.25)
        await engine.putconn(conn)
        await eventually(lambda: conn.closed, what="expired connection closed")
        await settle(engine)
        assert conn.id not in engine.server_ids()


async def test_max_idle_closes_only_above_min_size() -> None:
    driver = FakeDriver()
    async with opened(make_engine(driver, min_size=1, max_size=3, max_idle=0.1)) as engine:
        conns = [await engine.getconn() for _ in range(3)]
        for c in conns:
            await engine.putconn(c)
        assert driver.open_now == 3
        await eventually(lambda: driver.open_now == 1, what="idle reaped to min_size")
        await asyncio.sleep(0.4)  # several maintenance rounds later: still min_size
        assert driver.open_now == 1


async def test_no_lock_held_across_a_slow_connect() -> None:
    driver = FakeDriver()
    async with opened(make_engine(driver, min_size=1, max_size=2)) as engine:
        a = await engine.getconn()
        driver.gate = asyncio.Event()  # the next connect blocks until released
        b_task = asyncio.create_task(engine.getconn())
        await asyncio.sleep(0.01)
        assert driver.connecting == 1 and not b_task.done()
        # checkin and checkout of other connections proceed while the connect hangs
        await asyncio.wait_for(engine.putconn(a), 1)
        b = await asyncio.wait_for(b_task, 1)  # handed `a` by FIFO hand-off
        assert b is a and driver.connecting == 1
        await engine.putconn(b)
        c = await asyncio.wait_for(engine.getconn(), 1)
        await engine.putconn(c)
        driver.gate.set()
        await settle(engine)


async def test_acquire_timeout_raises_pool_timeout_with_diagnostics() -> None:
    seen: list[ConnectionEvent] = []
    hooks = Hooks(on_timeout=seen.append)
    engine = make_engine(hooks=hooks, min_size=1, max_size=1, acquire_timeout=0.1, name="diag")
    async with opened(engine):
        held = await engine.getconn()
        with pytest.raises(PoolTimeout) as info:
            await engine.getconn()
        assert isinstance(info.value, TimeoutError)
        msg = str(info.value)
        for part in ("'diag'", "max_size=1", "in use=1", "waiting=1", "longest held="):
            assert part in msg, msg
        assert engine.recorder.timeouts == 1 and len(seen) == 1
        assert engine.waiting == 0 and engine.recorder.pending == 0
        await engine.putconn(held)


async def test_max_waiting_refuses_at_once() -> None:
    async with opened(make_engine(min_size=1, max_size=1, max_waiting=2)) as engine:
        held = await engine.getconn()
        waiters = [asyncio.create_task(engine.getconn()) for _ in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(TooManyRequests):
            await asyncio.wait_for(engine.getconn(), 1)  # not a TimeoutError: refused
        assert engine.recorder.refused == 1
        await engine.putconn(held)
        for w in waiters:
            await engine.putconn(await w)


async def test_cancelled_waiter_after_hand_off_passes_connection_on() -> None:
    async with opened(make_engine(min_size=1, max_size=1)) as engine:
        conn = await engine.getconn()
        w1 = asyncio.create_task(engine.getconn())
        w2 = asyncio.create_task(engine.getconn())
        await asyncio.sleep(0)
        await engine.putconn(conn)  # handed to w1's future...
        w1.cancel()  # ...but w1 is cancelled before it runs
        got = await asyncio.wait_for(w2, 1)
        assert got is conn
        with pytest.raises(asyncio.CancelledError):
            await w1
        await engine.putconn(got)
        assert engine.recorder.used == 0 and engine.idle_count == 1


async def test_connection_error_mid_use_discards_connection() -> None:
    driver = FakeDriver()
    async with opened(make_engine(driver, min_size=1, max_size=1)) as engine:
        with pytest.raises(ConnectionResetError):
            async with engine.acquire() as conn:
                raise ConnectionResetError("lost")
        await eventually(lambda: conn.closed, what="broken connection closed")
        async with engine.acquire() as other:
            assert other is not conn


async def test_failing_server_never_wedges_waiters() -> None:
    driver = FakeDriver()
    engine = make_engine(driver, min_size=0, max_size=2, acquire_timeout=0.5)
    async with opened(engine):
        driver.down = True
        results = await asyncio.wait_for(
            asyncio.gather(*(engine.getconn() for _ in range(6)), return_exceptions=True), 5
        )
        assert all(isinstance(r, ConnectionRefusedError | PoolTimeout) for r in results), results
        driver.down = False
        async with engine.acquire() as conn:
            assert isinstance(conn, FakeConn)


async def test_reset_rollback_sends_nothing_to_an_idle_connection() -> None:
    async with opened(make_engine(min_size=1, max_size=1)) as engine:
        for _ in range(5):
            async with engine.acquire() as conn:
                pass
        assert conn.statements == []
        async with engine.acquire() as conn:
            conn.in_txn = True
        assert conn.statements == ["ROLLBACK"] and not conn.in_txn


async def test_reset_full_resets_and_replays_on_connect() -> None:
    connects: list[int | str | None] = []
    hooks = Hooks(on_connect=lambda ev: connects.append(ev.connection_id))
    async with opened(make_engine(hooks=hooks, min_size=1, max_size=1, reset="full")) as engine:
        async with engine.acquire() as conn:
            pass
        assert conn.statements == ["RESET"]
        assert connects == [conn.id, conn.id]


async def test_reset_full_replaces_when_driver_has_none() -> None:
    driver = FakeDriver()
    driver.supports_full_reset = False
    async with opened(make_engine(driver, min_size=1, max_size=1, reset="full")) as engine:
        async with engine.acquire() as first:
            pass
        await settle(engine)
        async with engine.acquire() as second:
            pass
        assert first.closed and second is not first


async def test_pre_ping_replaces_dead_connection_transparently() -> None:
    async with opened(make_engine(min_size=1, max_size=2, pre_ping=True)) as engine:
        async with engine.acquire() as conn:
            pass
        conn.dead = True  # killed server-side while idle
        async with engine.acquire() as fresh:
            assert fresh is not conn
        assert conn.closed and "PING" in conn.statements


async def test_hooks_order_and_counts() -> None:
    log: list[tuple[str, int | str | None]] = []

    def rec(name: str) -> object:
        return lambda ev: log.append((name, ev.connection_id))

    hooks = Hooks(on_connect=rec("connect"), on_checkout=rec("checkout"),
                  on_checkin=rec("checkin"), on_close=rec("close"))  # fmt: skip
    engine = make_engine(hooks=hooks, min_size=1, max_size=1)
    async with opened(engine):
        for _ in range(2):
            async with engine.acquire():
                pass
    assert log == [("connect", 1), ("checkout", 1), ("checkin", 1),
                   ("checkout", 1), ("checkin", 1), ("close", 1)]  # fmt: skip


async def test_failing_on_connect_discards_connection_and_raises_hook_error() -> None:
    driver = FakeDriver()

    def boom(ev: ConnectionEvent) -> None:
        raise RuntimeError("setup failed")

    engine = make_engine(driver, hooks=Hooks(on_connect=boom), min_size=0, max_size=1)
    async with opened(engine):
        with pytest.raises(HookError) as info:
            await engine.getconn()
        assert isinstance(info.value.__cause__, RuntimeError)
        assert driver.opened and all(c.closed for c in driver.opened)
        assert engine.recorder.open == 0 and engine.recorder.used == 0


async def test_close_drains_then_terminates() -> None:
    driver = FakeDriver()
    engine = make_engine(driver, min_size=2, max_size=2)
    await engine.open()
    returned = await engine.getconn()
    kept = await engine.getconn()

    async def give_back() -> None:
        await asyncio.sleep(0.05)
        await engine.putconn(returned)

    task = asyncio.create_task(give_back())
    await engine.close(timeout=0.5)
    await task
    assert returned.closed and returned.graceful  # drained, closed normally
    assert kept.closed and not kept.graceful  # still out after the timeout: terminated
    with pytest.raises(PoolClosed):
        await engine.getconn()
    await engine.putconn(kept)  # giving back after close is harmless
    await engine.close()  # idempotent
    assert engine.recorder.open == 0 and engine.recorder.used == 0


async def test_leak_reported_once_with_acquire_stack(caplog: pytest.LogCaptureFixture) -> None:
    leaks: list[ConnectionEvent] = []
    engine = make_engine(hooks=Hooks(on_leak=leaks.append), leak_timeout=0.1)
    caplog.set_level(logging.WARNING, logger="poolbridge.leaks")
    async with opened(engine):
        conn = await engine.getconn()  # the acquire site the report must show
        await eventually(lambda: leaks, what="leak report")
        await asyncio.sleep(0.3)
        assert len(leaks) == 1
        stack = leaks[0].acquire_stack or ""
        assert "test_leak_reported_once_with_acquire_stack" in stack
        assert "acquired at" in caplog.text
        await engine.putconn(conn)


async def test_close_reports_connections_still_out() -> None:
    leaks: list[ConnectionEvent] = []
    engine = make_engine(hooks=Hooks(on_leak=leaks.append), leak_timeout=60)
    await engine.open()
    await engine.getconn()
    await engine.close(timeout=0)
    assert len(leaks) == 1 and leaks[0].held is not None


async def test_stats_follow_the_engine() -> None:
    async with opened(make_engine(min_size=1, max_size=3)) as engine:
        a = await engine.getconn()
        b = await engine.getconn()
        snap = engine.recorder.snapshot()
        assert snap["connection.count.used"] == 2
        assert snap["connection.count.idle"] == 0
        await engine.putconn(a)
        await engine.putconn(b)
        snap = engine.recorder.snapshot()
        assert snap["connection.count.used"] == 0 and snap["connection.count.idle"] == 2
        assert snap["connection.wait_time"]["count"] == 2
        assert snap["connection.use_time"]["count"] == 2


async def test_mixed_timeouts_share_one_deadline_timer() -> None:
    async with opened(make_engine(min_size=1, max_size=1, acquire_timeout=5)) as engine:
        held = await engine.getconn()
        patient = asyncio.create_task(engine.getconn(timeout=5))
        await asyncio.sleep(0)
        # a later waiter with an earlier deadline re-arms the shared timer
        with pytest.raises(PoolTimeout):
            await asyncio.wait_for(engine.getconn(timeout=0.1), 3)
        assert not patient.done() and engine.waiting == 1
        await engine.putconn(held)
        conn = await asyncio.wait_for(patient, 1)
        # the timer armed for `patient` (served) must not stop the next waiter timing out
        with pytest.raises(PoolTimeout):
            await asyncio.wait_for(engine.getconn(timeout=0.1), 3)
        await engine.putconn(conn)
        assert engine.recorder.timeouts == 2 and engine.recorder.pending == 0
