"""The ticker (pool/ticker.py) and the engine's maintenance on it: no timer in the loop.

Why it matters: while any timer is scheduled in an asyncio loop, every loop iteration
computes a select timeout from it (~2k CPU instructions, docs/performance.md). The engine's
maintenance is run by one process-wide thread posting to the loop instead.

asyncio has no public way to list a loop's timers: the engine tests read the stdlib loop's
private ``_scheduled`` heap (the ``TimerHandle`` objects ``call_later``/``call_at`` and
``asyncio.sleep`` push there). That is a fact about the test's own loop, used only here;
poolbridge itself never reads it.
"""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from typing import Any

import pytest

from poolbridge.errors import ConnectError
from poolbridge.pool import ticker as ticker_module
from poolbridge.pool.ticker import Ticker

from .fake import FakeDriver, eventually, make_engine, opened

TIMEOUT = 10.0  # generous bound for anything a thread must do "soon"


def _wait_until(predicate: Any, what: str) -> None:
    end = time.monotonic() + TIMEOUT
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def _live_timers(loop: asyncio.AbstractEventLoop) -> list[Any]:
    """The loop's scheduled, not cancelled timer handles (stdlib loop: private heap)."""
    return [h for h in loop._scheduled if not h.cancelled()]  # type: ignore[attr-defined]


# -- the ticker on its own ----------------------------------------------------------------
def test_callback_runs_on_the_loop_thread_every_interval() -> None:
    ticker = Ticker()
    loop = asyncio.new_event_loop()
    threads: list[int] = []

    async def main() -> None:
        tick = ticker.schedule(loop, 0.02, lambda: threads.append(threading.get_ident()))
        await eventually(lambda: len(threads) >= 3, timeout=TIMEOUT, what="three ticks")
        tick.cancel()
        assert tick.cancelled and len(ticker) == 0
        seen = len(threads)
        await asyncio.sleep(0.1)  # five intervals: a cancelled tick never runs again
        assert len(threads) == seen

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    assert set(threads) == {threading.get_ident()}  # the loop's thread, never the ticker's
    assert ticker.thread is not None and ticker.thread.daemon


def test_no_registration_no_wakeup() -> None:
    ticker = Ticker()
    loop = asyncio.new_event_loop()
    try:
        tick = ticker.schedule(loop, 0.01, lambda: None)
        _wait_until(lambda: ticker.wakeups >= 3, "the thread to run")
        tick.cancel()
        time.sleep(0.05)  # the thread sees the cancel and waits without a timeout
        idle_from = ticker.wakeups
        time.sleep(0.2)  # twenty intervals of the cancelled tick
        assert ticker.wakeups == idle_from
        assert ticker.thread is not None and ticker.thread.is_alive()
    finally:
        loop.close()


def test_registrations_are_weak() -> None:
    ticker = Ticker()
    loop = asyncio.new_event_loop()
    calls: list[int] = []
    try:
        tick = ticker.schedule(loop, 0.01, lambda: calls.append(1))
        ref = weakref.ref(tick)
        assert len(ticker) == 1
        del tick
        gc.collect()
        assert ref() is None  # the ticker's reference did not keep it
        assert len(ticker) == 0
        _wait_until(lambda: not ticker._ticks, "the thread to drop the dead entry")
        loop.run_until_complete(asyncio.sleep(0))
        assert calls == []
    finally:
        loop.close()


def test_closed_loop_is_dropped_and_the_thread_goes_on() -> None:
    ticker = Ticker()
    dead = asyncio.new_event_loop()
    dead.close()
    live = asyncio.new_event_loop()
    calls: list[str] = []
    try:
        gone = ticker.schedule(dead, 0.01, lambda: calls.append("dead"))
        _wait_until(lambda: gone.cancelled, "the closed loop's tick to be dropped")
        assert len(ticker) == 0
        time.sleep(0.05)
        idle_from = ticker.wakeups
        time.sleep(0.1)
        assert ticker.wakeups == idle_from  # no spinning on the dropped entry

        async def main() -> None:
            tick = ticker.schedule(live, 0.01, lambda: calls.append("live"))
            await eventually(lambda: "live" in calls, timeout=TIMEOUT, what="a tick")
            tick.cancel()

        live.run_until_complete(main())
        assert "dead" not in calls
    finally:
        live.close()


def test_a_loop_that_does_not_run_gets_one_post_at_a_time() -> None:
    ticker = Ticker()
    loop = asyncio.new_event_loop()
    calls: list[int] = []
    try:
        tick = ticker.schedule(loop, 0.01, lambda: calls.append(1))
        _wait_until(lambda: ticker.wakeups >= 10, "ten intervals")
        loop.run_until_complete(asyncio.sleep(0))  # run what was posted meanwhile
        assert 1 <= len(calls) <= 2  # one pending post, plus at most one more just now
        tick.cancel()
    finally:
        loop.close()


def test_uvloop() -> None:
    uvloop = pytest.importorskip("uvloop")
    ticker = Ticker()
    loop = uvloop.new_event_loop()
    calls: list[int] = []

    async def main() -> None:
        tick = ticker.schedule(loop, 0.01, lambda: calls.append(1))
        await eventually(lambda: len(calls) >= 2, timeout=TIMEOUT, what="two ticks")
        tick.cancel()

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    closed = ticker.schedule(loop, 0.01, lambda: None)  # uvloop's closed loop: dropped too
    _wait_until(lambda: closed.cancelled, "the closed uvloop's tick to be dropped")


def test_interval_must_be_positive() -> None:
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(ValueError, match="positive"):
            Ticker().schedule(loop, 0.0, lambda: None)
    finally:
        loop.close()


def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_forked_child_gets_a_fresh_ticker() -> None:
    run = _run_python(
        """
        import asyncio, os
        from poolbridge.pool import ticker

        parent_loop = asyncio.new_event_loop()
        parent_tick = ticker.schedule(parent_loop, 0.01, lambda: None)
        parent_ticker = ticker.ticker()
        assert parent_ticker.thread.is_alive()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                child = ticker.ticker()
                assert child is not parent_ticker and parent_ticker.forked
                assert child.thread is None and len(child) == 0
                parent_tick.cancel()  # the parent's (forgotten) tick: no wait on its lock
                calls = []

                async def main():
                    tick = ticker.schedule(asyncio.get_running_loop(), 0.01,
                                           lambda: calls.append(1))
                    for _ in range(1000):
                        if calls:
                            break
                        await asyncio.sleep(0.01)
                    tick.cancel()

                asyncio.run(main())
                code = 0 if calls and child.thread.is_alive() else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        parent_tick.cancel()
        parent_loop.close()
        print("child exit", os.waitstatus_to_exitcode(status))
        """
    )
    assert run.returncode == 0, run.stderr
    assert "child exit 0" in run.stdout, run.stdout + run.stderr


def test_interpreter_exit_does_not_wait_for_the_thread() -> None:
    run = _run_python(
        """
        import asyncio
        from poolbridge.pool import ticker

        loop = asyncio.new_event_loop()
        tick = ticker.schedule(loop, 0.01, lambda: None)  # left registered on purpose
        assert ticker.ticker().thread.is_alive()
        print("exiting")
        """
    )
    assert run.returncode == 0, run.stderr
    assert "exiting" in run.stdout


# -- the engine's maintenance on it -------------------------------------------------------
@pytest.mark.asyncio
async def test_busy_pool_keeps_no_timer_and_maintenance_still_reaps() -> None:
    """Five idle connections above min_size go after max_idle while one task keeps checking
    out and in; then, busy for several more maintenance intervals, at no loop iteration is
    a timer scheduled (a close of a reaped connection is bounded by a timer while it runs:
    that is why the first phase is not sampled)."""
    driver = FakeDriver()
    loop = asyncio.get_running_loop()
    ticker = ticker_module.ticker()
    async with opened(make_engine(driver, min_size=1, max_size=6, max_idle=0.1)) as engine:
        held = [await engine.getconn() for _ in range(6)]
        for conn in held:
            await engine.putconn(conn)
        assert driver.open_now == 6
        deadline = time.monotonic() + TIMEOUT
        while (driver.open_now > 1 or engine.size > 1) and time.monotonic() < deadline:
            async with engine.acquire():
                await asyncio.sleep(0)  # a loop iteration with the connection out
        assert driver.open_now == 1, "idle connections above min_size were not reaped"
        await asyncio.sleep(0)  # the last close's timer is cancelled and popped
        timers_seen: list[str] = []
        wakeups = ticker.wakeups
        busy_until = time.monotonic() + 0.2  # eight maintenance intervals of 25 ms, busy
        while time.monotonic() < busy_until:
            async with engine.acquire():
                await asyncio.sleep(0)
            timers_seen.extend(repr(h) for h in _live_timers(loop))
        assert timers_seen == [], f"timers in the busy pool's loop: {timers_seen[:3]}"
        assert ticker.wakeups > wakeups  # the maintenance was scheduled meanwhile
        assert driver.open_now == 1 and engine.size == 1


@pytest.mark.asyncio
async def test_idle_connections_expire_by_lifetime_without_a_checkout() -> None:
    driver = FakeDriver()
    async with opened(make_engine(driver, min_size=2, max_size=2, max_lifetime=0.2)) as engine:
        first = set(engine.server_ids())
        assert len(first) == 2
        await eventually(
            lambda: not first & set(engine.server_ids()) and engine.idle_count == 2,
            what="both idle connections replaced",
        )
        assert driver.open_now == 2
        assert all(c.closed for c in driver.opened if c.id in first)


@pytest.mark.asyncio
async def test_close_unregisters_the_maintenance() -> None:
    engine = make_engine(min_size=1, max_idle=0.1)
    await engine.open()
    tick = engine._ticking
    assert tick is not None and not tick.cancelled
    assert tick.loop is asyncio.get_running_loop()
    assert tick.interval == pytest.approx(0.025)  # a quarter of max_idle
    assert tick in _live_ticks()
    await engine.close()
    assert tick.cancelled and engine._ticking is None
    assert tick not in _live_ticks()


@pytest.mark.asyncio
async def test_a_failed_open_unregisters_the_maintenance() -> None:
    driver = FakeDriver()
    driver.down = True
    engine = make_engine(driver, min_size=1, acquire_timeout=0.2)
    with pytest.raises(ConnectError):
        await engine.open()
    assert engine.closed and engine._ticking is None


@pytest.mark.asyncio
async def test_an_abandoned_engine_is_collected_with_its_schedule() -> None:
    engine = make_engine(min_size=1, max_idle=0.1)
    await engine.open()
    tick = weakref.ref(engine._ticking)  # type: ignore[arg-type]
    del engine
    await asyncio.sleep(0.05)  # a post already queued in the loop runs (and lets go)
    gc.collect()
    assert tick() is None  # the ticker's weak reference did not keep the engine alive


def _live_ticks() -> list[Any]:
    t = ticker_module.ticker()
    with t._cond:
        return [tick for ref in t._ticks.values() if (tick := ref()) is not None]
