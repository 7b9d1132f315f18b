"""core.deadlines: many deadlines, one loop timer (real event loop, no mocks)."""

from __future__ import annotations

import asyncio
from time import monotonic
from typing import Any

import pytest

from poolbridge.pool.deadlines import Deadlines

pytestmark = pytest.mark.asyncio


async def test_due_deadline_fires_once_cancelled_one_never() -> None:
    dl = Deadlines(asyncio.get_running_loop())
    fired: list[tuple[str, float]] = []
    t0 = monotonic()
    a = dl.arm(0.05, lambda: fired.append(("a", monotonic() - t0)))
    b = dl.arm(0.05, lambda: fired.append(("b", monotonic() - t0)))
    b.cancel()
    await asyncio.sleep(0.15)
    assert [name for name, _ in fired] == ["a"]
    assert fired[0][1] >= 0.05
    assert a.fired and not b.fired
    assert len(dl) == 0


async def test_earlier_deadline_rearms_the_timer() -> None:
    dl = Deadlines(asyncio.get_running_loop())
    fired: list[str] = []
    dl.arm(5.0, lambda: fired.append("late"))
    t0 = monotonic()
    dl.arm(0.05, lambda: fired.append("early"))
    while not fired and monotonic() - t0 < 2:
        await asyncio.sleep(0.01)
    assert fired == ["early"] and monotonic() - t0 < 1.0
    dl.close()


async def test_arm_cancel_pairs_use_one_timer_and_stay_small() -> None:
    loop = asyncio.get_running_loop()
    dl = Deadlines(loop)
    timers = 0
    real = loop.call_later

    def counting(*args: Any, **kwargs: Any) -> asyncio.TimerHandle:
        nonlocal timers
        timers += 1
        return real(*args, **kwargs)

    loop.call_later = counting  # type: ignore[method-assign]
    try:
        for _ in range(1000):
            dl.arm(10.0, lambda: None).cancel()
    finally:
        del loop.call_later  # back to the class attribute
    assert timers == 1
    assert len(dl) <= 1  # finished deadlines are dropped from the front as new ones arrive
    dl.close()


async def test_a_failing_callback_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dl = Deadlines(asyncio.get_running_loop())
    fired: list[str] = []

    def boom() -> None:
        raise RuntimeError("boom")

    dl.arm(0.02, boom)
    dl.arm(0.02, lambda: fired.append("second"))
    await asyncio.sleep(0.1)
    assert fired == ["second"]
    assert "a deadline callback failed" in caplog.text


async def test_keyed_deadline_calls_on_due_once_and_leave_reports_it() -> None:
    due: list[object] = []
    dl = Deadlines(asyncio.get_running_loop(), on_due=due.append)
    slow, quick = object(), object()
    dl.enter(slow, 0.05)
    dl.enter(quick, 0.05)
    assert dl.leave(quick) is False  # ended in time: on_due never runs for it
    await asyncio.sleep(0.15)
    assert due == [slow]
    assert dl.leave(slow) is True  # its answer (if any) came after the cut
    assert dl.leave(slow) is False and len(dl) == 0


async def test_keyed_deadlines_share_one_timer_with_objects() -> None:
    loop = asyncio.get_running_loop()
    due: list[str] = []
    dl = Deadlines(loop, on_due=due.append)
    timers = 0
    real = loop.call_later

    def counting(*args: Any, **kwargs: Any) -> asyncio.TimerHandle:
        nonlocal timers
        timers += 1
        return real(*args, **kwargs)

    loop.call_later = counting  # type: ignore[method-assign]
    try:
        for i in range(1000):
            dl.enter(i, 10.0)
            assert not dl.leave(i)
        dl.arm(10.0, lambda: None).cancel()
    finally:
        del loop.call_later  # back to the class attribute
    assert timers == 1 and len(dl) <= 1
    # an earlier keyed deadline re-arms the timer that a later object deadline set
    t0 = monotonic()
    dl.enter("early", 0.05)
    while not due and monotonic() - t0 < 2:
        await asyncio.sleep(0.01)
    assert due == ["early"] and monotonic() - t0 < 1.0
    assert dl.leave("early")
    dl.close()
    assert len(dl) == 0
