"""Hook dispatch: sync and async hooks, on_connect failures raise HookError, others are
logged and counted."""

from __future__ import annotations

import asyncio
import logging

import pytest

from poolbridge import ConnectionEvent, HookError, Hooks
from poolbridge.pool.hooks import HOOK_NAMES, HookRunner

EVENT = ConnectionEvent(pool="p", adapter="asyncpg", connection_id=4242, age=1.5, connection="c")
pytestmark = pytest.mark.asyncio


async def test_sync_and_async_hooks_receive_the_event() -> None:
    seen: list[tuple[str, ConnectionEvent]] = []

    def on_connect(e: ConnectionEvent) -> None:
        seen.append(("connect", e))

    async def on_checkout(e: ConnectionEvent) -> None:
        await asyncio.sleep(0)
        seen.append(("checkout", e))

    runner = HookRunner(Hooks(on_connect=on_connect, on_checkout=on_checkout))
    await runner.run_on_connect(EVENT)
    await runner.emit("on_checkout", EVENT)
    await runner.emit("on_checkin", EVENT)  # not registered: nothing happens
    assert seen == [("connect", EVENT), ("checkout", EVENT)]
    assert runner.has("on_connect") and runner.has("on_checkout") and not runner.has("on_leak")
    assert runner.failures == {}


@pytest.mark.parametrize("is_async", [False, True])
async def test_on_connect_failure_raises_hook_error_chaining_the_cause(is_async: bool) -> None:
    boom = ValueError("no search_path")

    def sync_hook(e: ConnectionEvent) -> None:
        raise boom

    async def async_hook(e: ConnectionEvent) -> None:
        raise boom

    runner = HookRunner(Hooks(on_connect=async_hook if is_async else sync_hook))
    with pytest.raises(HookError) as info:
        await runner.run_on_connect(EVENT)
    assert info.value.__cause__ is boom
    assert "'p'" in str(info.value) and "4242" in str(info.value)
    assert runner.failures == {"on_connect": 1}


async def test_on_connect_cancellation_is_not_wrapped() -> None:
    async def hook(e: ConnectionEvent) -> None:
        raise asyncio.CancelledError

    runner = HookRunner(Hooks(on_connect=hook))
    with pytest.raises(asyncio.CancelledError):
        await runner.run_on_connect(EVENT)
    assert runner.failures == {}


@pytest.mark.parametrize("name", [n for n in HOOK_NAMES if n != "on_connect"])
async def test_other_hook_failures_are_logged_and_counted(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    calls = 0

    async def hook(e: ConnectionEvent) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("metrics backend down")

    runner = HookRunner(Hooks(**{name: hook}))
    with caplog.at_level(logging.ERROR, logger="poolbridge.hooks"):
        await runner.emit(name, EVENT)  # type: ignore[arg-type]
        await runner.emit(name, EVENT)  # type: ignore[arg-type]
    assert calls == 2 and runner.failures == {name: 2}
    records = [r for r in caplog.records if r.name == "poolbridge.hooks"]
    assert len(records) == 2 and name in records[0].getMessage()
    assert records[0].exc_info is not None and "metrics backend down" in caplog.text


async def test_emit_sync_runs_sync_hooks_now_and_returns_async_ones(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[str] = []

    def sync_hook(e: ConnectionEvent) -> None:
        seen.append("sync")

    async def async_hook(e: ConnectionEvent) -> None:
        seen.append("async")
        raise RuntimeError("late failure")

    def failing(e: ConnectionEvent) -> None:
        raise RuntimeError("sync failure")

    runner = HookRunner(Hooks(on_checkin=sync_hook, on_checkout=async_hook, on_close=failing))
    assert runner.emit_sync("on_checkin", EVENT) is None and seen == ["sync"]
    pending = runner.emit_sync("on_checkout", EVENT)
    assert pending is not None and seen == ["sync"]  # not run yet
    with caplog.at_level(logging.ERROR, logger="poolbridge.hooks"):
        await pending  # failure logged, not raised
        assert runner.emit_sync("on_close", EVENT) is None
    assert seen == ["sync", "async"]
    assert runner.failures == {"on_checkout": 1, "on_close": 1}
    assert runner.emit_sync("on_leak", EVENT) is None


async def test_event_and_hooks_are_frozen_keyword_types() -> None:
    with pytest.raises(AttributeError):  # immutable: a NamedTuple
        EVENT.age = 2.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        Hooks(print)  # type: ignore[misc]
    assert ConnectionEvent("p", "a", None).connection is None


async def test_emitter_is_emit_sync_bound_to_one_pool(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[ConnectionEvent] = []

    async def later(e: ConnectionEvent) -> None:
        seen.append(e)

    def failing(e: ConnectionEvent) -> None:
        raise RuntimeError("sync failure")

    runner = HookRunner(Hooks(on_checkin=seen.append, on_checkout=later, on_close=failing))
    assert runner.emitter("on_leak", pool="p", adapter="asyncpg") is None
    checkin = runner.emitter("on_checkin", pool="p", adapter="asyncpg")
    checkout = runner.emitter("on_checkout", pool="p", adapter="asyncpg")
    close = runner.emitter("on_close", pool="p", adapter="asyncpg")
    assert checkin is not None and checkout is not None and close is not None
    # a sync hook: run now, nothing to await; the event equals one built the public way
    assert checkin(4242, 1.5, 0.25, "c") is None
    assert seen == [ConnectionEvent("p", "asyncpg", 4242, 1.5, 0.25, "c")]
    assert type(seen[0]) is ConnectionEvent and seen[0].held == 0.25
    pending = checkout(4242, 1.5, None, "c")
    assert pending is not None and len(seen) == 1
    await pending
    assert seen[1] == EVENT
    with caplog.at_level(logging.ERROR, logger="poolbridge.hooks"):
        assert close(4242, 1.5, None, "c") is None
    assert runner.failures == {"on_close": 1} and "sync failure" in caplog.text
