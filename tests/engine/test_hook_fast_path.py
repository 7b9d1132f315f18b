"""The engine's hook fast path: sync hooks run inline (in the acquiring task, before
acquire/release return, without a loop iteration), async ones are awaited in place, and
an interrupted async on_checkout gives the connection back."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from poolbridge.pool.hooks import ConnectionEvent, Hooks

from .fake import make_engine, opened
from .real import target_for

pytestmark = pytest.mark.asyncio


async def test_sync_hooks_run_inline_in_the_acquiring_task() -> None:
    seen: list[tuple[str, asyncio.Task[Any] | None, bool, ConnectionEvent]] = []
    ticks: list[int] = []

    def rec(name: str) -> Any:
        def hook(ev: ConnectionEvent) -> None:
            # ticks still empty: the loop has not run a callback since the acquire began
            seen.append((name, asyncio.current_task(), bool(ticks), ev))

        return hook

    engine = make_engine(hooks=Hooks(on_checkout=rec("checkout"), on_checkin=rec("checkin")))
    async with opened(engine):
        loop = asyncio.get_running_loop()
        loop.call_soon(ticks.append, 1)
        conn = await engine.getconn()
        assert [s[0] for s in seen] == ["checkout"] and not ticks
        loop.call_soon(ticks.append, 2)
        await engine.putconn(conn)
        assert [s[0] for s in seen] == ["checkout", "checkin"] and not ticks
    me = asyncio.current_task()
    assert all(task is me and not ticked for _, task, ticked, _ in seen)
    out, back = seen[0][3], seen[1][3]
    assert out == ConnectionEvent("fake-pool", "fake", conn.id, out.age, None, conn)
    assert back.connection is conn and back.held is not None and back.held >= 0
    assert back.age >= out.age > 0 and back.acquire_stack is None


async def test_async_hooks_are_awaited_before_acquire_and_release_return() -> None:
    log: list[str] = []

    async def checkout(ev: ConnectionEvent) -> None:
        await asyncio.sleep(0.01)
        log.append("checkout")

    async def slow_checkin(ev: ConnectionEvent) -> None:
        await asyncio.sleep(0.01)
        log.append("checkin")

    engine = make_engine(hooks=Hooks(on_checkout=checkout, on_checkin=slow_checkin))
    async with opened(engine):
        async with engine.acquire():
            assert log == ["checkout"]
        assert log == ["checkout", "checkin"]


async def test_a_sync_callable_returning_a_coroutine_is_awaited_and_its_failure_counted() -> None:
    log: list[str] = []

    async def work(ev: ConnectionEvent) -> None:
        log.append("ran")
        raise RuntimeError("late failure")

    # a lambda is not a coroutine function, but what it returns is awaited all the same
    engine = make_engine(hooks=Hooks(on_checkout=lambda ev: work(ev)))
    async with opened(engine):
        async with engine.acquire():
            assert log == ["ran"]
        assert engine.hooks.failures == {"on_checkout": 1}
        assert engine.recorder.used == 0


async def test_cancelled_async_on_checkout_gives_the_connection_back() -> None:
    entered = asyncio.Event()

    async def stuck(ev: ConnectionEvent) -> None:
        entered.set()
        await asyncio.sleep(30)

    engine = make_engine(hooks=Hooks(on_checkout=stuck), min_size=1, max_size=1)
    async with opened(engine):
        task = asyncio.create_task(engine.getconn())
        await entered.wait()
        assert engine.recorder.used == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # taken back: nobody holds it, it is idle and the stats agree
        assert engine.recorder.used == 0 and engine.idle_count == 1
        assert engine.hooks.failures == {}


@pytest.mark.server
async def test_sync_hooks_on_postgresql_see_the_server_pid(request: pytest.FixtureRequest) -> None:
    target = target_for(request, "asyncpg")
    pids: list[tuple[str, int | str | None]] = []
    hooks = Hooks(
        on_checkout=lambda ev: pids.append(("out", ev.connection_id)),
        on_checkin=lambda ev: pids.append(("in", ev.connection_id)),
    )
    pool = await target.open(hooks, min_size=1, max_size=1)
    try:
        for _ in range(3):
            async with pool.acquire() as conn:
                assert pids[-1][0] == "out"  # ran before acquire returned
                server_pid = await target.scalar(conn, "SELECT pg_backend_pid()")
        assert pids == [("out", server_pid), ("in", server_pid)] * 3
        stats = pool.stats()
        assert stats["connection.use_time"]["count"] == 3
        assert stats["connection.wait_time"]["count"] == 3
        assert stats["connection.count.used"] == 0
    finally:
        await pool.close()


async def test_hooks_without_event_run_on_every_path_and_fail_like_any_hook() -> None:
    from poolbridge.pool.hooks import without_event

    calls: list[str] = []

    def checkout() -> None:
        calls.append("checkout")

    async def checkin() -> None:
        await asyncio.sleep(0)
        calls.append("checkin")

    def failing() -> None:
        raise RuntimeError("counted, never raised")

    engine = make_engine(
        hooks=Hooks(
            on_checkout=without_event(checkout),
            on_checkin=without_event(checkin),
            on_close=without_event(failing),
        )
    )
    async with opened(engine):
        async with engine.acquire():
            assert calls == ["checkout"]
        assert calls == ["checkout", "checkin"]  # the async one awaited before release returns
        conn = await engine.getconn()
        await engine.putconn(conn, discard=True)  # the general path, and on_close
        assert calls == ["checkout", "checkin"] * 2
        for _ in range(100):
            if engine.hooks.failures:
                break
            await asyncio.sleep(0.01)
        assert engine.hooks.failures == {"on_close": 1}
        assert engine.recorder.used == 0
