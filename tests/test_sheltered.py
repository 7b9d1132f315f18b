"""sheltered(): a cancellation of the calling task is held back until the coroutine ends."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from poolbridge.pool.sheltered import sheltered

T = TypeVar("T")


async def _raising(coro: Coroutine[Any, Any, T], *rest: Any) -> T:
    """sheltered(), then the cancellation held back raised: what a caller does."""
    result, held = await sheltered(coro, *rest)
    if held is not None:
        raise held
    return result


async def _detach_then_lock(lock: asyncio.Lock, log: list[str]) -> str:
    """What psycopg_pool's checkin does: a step, then a wait for a lock, then the rest."""
    log.append("detached")
    async with lock:
        await asyncio.sleep(0)  # a bare yield inside, too
        log.append("added")
    return "done"


@pytest.mark.asyncio
async def test_no_wait_returns_the_value() -> None:
    async def quick() -> int:
        return 7

    assert await sheltered(quick()) == (7, None)


@pytest.mark.asyncio
async def test_cancellation_while_waiting_is_raised_after_the_end() -> None:
    lock = asyncio.Lock()
    log: list[str] = []
    await lock.acquire()  # contended: the coroutine waits for it
    task = asyncio.create_task(sheltered(_detach_then_lock(lock, log)))
    await asyncio.sleep(0.01)
    assert log == ["detached"]
    task.cancel("first")
    task.cancel("second")  # twice: one cancellation handed back, the first
    await asyncio.sleep(0.01)
    assert not task.done(), "the cancellation reached the coroutine mid-way"
    lock.release()
    result, held = await task
    assert result == "done"
    assert isinstance(held, asyncio.CancelledError) and held.args == ("first",)
    assert log == ["detached", "added"]
    assert not lock.locked()


@pytest.mark.asyncio
async def test_the_caller_raises_what_was_held_back() -> None:
    lock = asyncio.Lock()
    log: list[str] = []
    await lock.acquire()
    task = asyncio.create_task(_raising(_detach_then_lock(lock, log)))
    await asyncio.sleep(0.01)
    task.cancel()
    lock.release()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    assert log == ["detached", "added"]


@pytest.mark.asyncio
async def test_the_plain_await_loses_the_step() -> None:
    """The hole sheltered() closes: the same cancellation on a plain await stops half-way."""
    lock = asyncio.Lock()
    log: list[str] = []
    await lock.acquire()
    task = asyncio.create_task(_detach_then_lock(lock, log))
    await asyncio.sleep(0.01)
    task.cancel()
    lock.release()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert log == ["detached"]


@pytest.mark.asyncio
async def test_cancellation_during_a_bare_yield_is_held_back() -> None:
    log: list[str] = []

    async def yields() -> None:
        for i in range(3):
            await asyncio.sleep(0)
            log.append(str(i))

    task = asyncio.create_task(_raising(yields()))
    await asyncio.sleep(0)  # the task has started and yields
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert log == ["0", "1", "2"]


@pytest.mark.asyncio
async def test_interruptible_moments_pass_the_cancellation_on() -> None:
    seen: list[str] = []
    state = {"round_trip": True}

    async def round_trip() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append("cancelled inside")
            raise

    task = asyncio.create_task(_raising(round_trip(), lambda s: s["round_trip"], state))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 2)
    assert seen == ["cancelled inside"]


@pytest.mark.asyncio
async def test_a_cancellation_the_coroutine_swallows_ends_normally() -> None:
    """Passed on to a coroutine that handles it (psycopg_pool discarding a connection whose
    rollback was cancelled), the release completes as the coroutine says."""

    async def swallows() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            return "discarded"
        return "kept"

    task = asyncio.create_task(_raising(swallows(), lambda _: True, None))
    await asyncio.sleep(0.01)
    task.cancel()
    assert await asyncio.wait_for(task, 2) == "discarded"


@pytest.mark.asyncio
async def test_timeout_around_it_still_becomes_timeout_error() -> None:
    lock = asyncio.Lock()
    log: list[str] = []
    await lock.acquire()
    asyncio.get_running_loop().call_later(0.1, lock.release)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.02):
            await _raising(_detach_then_lock(lock, log))
    assert log == ["detached", "added"]
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0


@pytest.mark.asyncio
async def test_failure_after_a_held_cancellation_raises_the_cancellation() -> None:
    gate = asyncio.Event()

    async def fails() -> None:
        await gate.wait()
        raise ValueError("after the wait")

    task = asyncio.create_task(_raising(fails()))
    await asyncio.sleep(0.01)
    task.cancel()
    gate.set()
    with pytest.raises(asyncio.CancelledError) as info:
        await task
    assert isinstance(info.value.__context__, ValueError)


@pytest.mark.asyncio
async def test_result_after_the_wait() -> None:
    fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def waits() -> int:
        return await fut + 1

    task = asyncio.create_task(sheltered(waits()))
    await asyncio.sleep(0)
    fut.set_result(41)
    assert await task == (42, None)


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_futures_carry_the_blocking_flag_sheltered_writes(loop_kind: str) -> None:
    """sheltered() sets ``_asyncio_future_blocking`` on the future a coroutine waits on, as a
    task does (the stdlib's Future-like protocol, ``asyncio.isfuture``): a loop whose futures
    lack it would break sheltered(), so this fails by name first."""
    if loop_kind == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        fut = loop.create_future()
        assert hasattr(fut, "_asyncio_future_blocking"), (
            f"{type(fut)!r} has no _asyncio_future_blocking: poolbridge.pool.sheltered "
            "relies on the Future-like protocol of asyncio.isfuture()"
        )
        assert asyncio.isfuture(fut)
        fut.cancel()
    finally:
        loop.close()
