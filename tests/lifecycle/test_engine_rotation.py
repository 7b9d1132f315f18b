"""Rotation and loop-guard details that need exact control over connects (the engine's fake
driver: these test the engine and the core helpers, not a database)."""

from __future__ import annotations

import asyncio
import os

import pytest

from poolbridge.config.model import PoolConfig
from poolbridge.errors import PoolTimeout, WrongEventLoop
from poolbridge.pool.loopguard import LoopGuard
from poolbridge.pool.rotation import with_password

from ..engine.fake import FAKE_URL, FakeDriver, eventually, make_engine, opened


@pytest.mark.asyncio
async def test_connection_opened_across_rotate_is_never_handed_out() -> None:
    driver = FakeDriver()
    engine = make_engine(driver, min_size=0, max_size=2)
    async with opened(engine):
        driver.gate = asyncio.Event()
        waiter = asyncio.create_task(engine.getconn())
        await eventually(lambda: driver.connecting == 1, what="a connect in flight")
        await engine.rotate(password="new")  # min_size=0: nothing to wait for
        assert engine.config.password == "new"
        driver.gate.set()  # the old-credential connect completes now
        conn = await asyncio.wait_for(waiter, 5)
        first = driver.opened[0]
        assert conn is not first  # the waiter got a connection opened after rotate()
        await eventually(lambda: first.closed, what="the stale connection closed")
        await engine.putconn(conn)
        assert engine.size <= 2


@pytest.mark.asyncio
async def test_rotate_reports_failed_connects_and_recovers() -> None:
    driver = FakeDriver()
    engine = make_engine(driver, min_size=1, max_size=2, acquire_timeout=0.5)
    async with opened(engine):
        old = driver.opened[0]
        driver.down = True
        with pytest.raises(PoolTimeout, match=r"rotate\(\)") as info:
            await engine.rotate()
        assert isinstance(info.value.__cause__, ConnectionRefusedError)
        assert old.closed  # replaced even though no new connection could be opened yet
        driver.down = False
        conn = await engine.getconn()  # the pool kept trying: it serves again
        assert conn is not old
        await engine.putconn(conn)


@pytest.mark.asyncio
async def test_expire_all_replaces_idle_now_and_checked_out_at_checkin() -> None:
    driver = FakeDriver()
    engine = make_engine(driver, min_size=2, max_size=3)
    async with opened(engine):
        held = await engine.getconn()
        idle = next(c for c in driver.opened if c is not held)
        engine.expire_all()
        await eventually(lambda: idle.closed, what="the idle connection closed")
        assert not held.closed
        await engine.putconn(held)
        await eventually(lambda: held.closed, what="the returned connection closed")
        await eventually(lambda: engine.idle_count == 2, what="refill to min_size")
        assert driver.open_now == 2


def test_with_password() -> None:
    config = PoolConfig(url=FAKE_URL, password="old")
    assert with_password(config, None) is config
    new = with_password(config, "brand-new-secret")
    assert new.password == "brand-new-secret" and new.name == config.name
    assert "brand-new-secret" not in repr(new)
    with pytest.raises(TypeError, match="str or a sync/async callable"):
        with_password(config, 42)  # type: ignore[arg-type]


def test_loop_guard_messages() -> None:
    guard = LoopGuard("orders")
    with pytest.raises(RuntimeError, match="not open"):
        asyncio.run(_check(guard))  # never bound
    first = asyncio.new_event_loop()
    try:
        first.run_until_complete(_bind(guard))
        with pytest.raises(WrongEventLoop) as info:
            asyncio.run(_check(guard))
        text = str(info.value)
        assert "pool 'orders' was opened in event loop" in text
        assert f"{id(first):#x}" in text and f"process {os.getpid()}" in text
        assert "another event loop" in text
        first.run_until_complete(_check(guard))  # its own loop passes
    finally:
        first.close()


async def _bind(guard: LoopGuard) -> None:
    guard.bind()


async def _check(guard: LoopGuard) -> None:
    guard.check()
