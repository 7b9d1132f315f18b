"""``pool.rotate(password=...)`` on every stack: every connection replaced, no downtime.

Each test identifies the pool's connections by the server ids it recorded and checks them
server-side; the password provider counts its calls (PostgreSQL here trusts 127.0.0.1, so
any password is accepted there: the counts show which provider opened what).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from time import monotonic
from typing import Any

import pytest

from poolbridge.errors import PoolClosed

from ._stacks import PARAMS, Server, Stack, config, open_stack, pool_ids, scalar, url_for

pytestmark = pytest.mark.asyncio


class Provider:
    """A password provider that counts its calls (sync, or async with ``is_async``)."""

    def __init__(self, password: str, *, is_async: bool = False) -> None:
        self.password = password
        self.calls = 0
        self.is_async = is_async

    def __call__(self) -> Any:
        self.calls += 1
        if not self.is_async:
            return self.password

        async def later() -> str:
            return self.password

        return later()


def _password(stack: Stack) -> str:
    return "" if stack.backend == "mysql" else "any-password"  # MariaDB root has none


def _provider(stack: Stack, *, is_async: bool = False) -> Provider | None:
    """A counting provider; None for SQLite (no server: a password is refused there)."""
    return None if stack.backend == "sqlite" else Provider(_password(stack), is_async=is_async)


async def _wait_until(cond: Callable[[], Any], timeout: float = 10.0) -> None:
    """Poll ``cond`` (sync, or async returning bool) until true; fail after ``timeout`` s."""
    deadline = monotonic() + timeout
    while True:
        result = cond()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        assert monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("stack", PARAMS)
async def test_rotate_replaces_every_connection(
    request: pytest.FixtureRequest, stack: Stack
) -> None:
    url = url_for(request, stack)
    first = _provider(stack)
    pool = await open_stack(stack, config(stack, url, password=first))
    try:
        async with Server(stack, url) as server:
            old = pool_ids(pool)
            assert len(old) == 2
            created0 = pool.stats()["connection.created"]
            if first is not None:
                assert first.calls == created0 >= 2  # one call per new connection
                assert await server.alive(old) == old
            second = _provider(stack, is_async=True)
            async with pool.acquire() as held:
                assert await scalar(stack, held, "SELECT 1") == 1
                held_ids = pool_ids(pool)
                await pool.rotate(password=second)
                now = pool_ids(pool)
                # the idle old connection is gone; the checked-out one stays until checkin
                assert len(now - old) >= 1
                assert now & old <= held_ids
                assert await scalar(stack, held, "SELECT 2") == 2  # still usable meanwhile
            # checked in: closed instead of reused; the pool refills to min_size
            await _wait_until(lambda: not (pool_ids(pool) & old) and len(pool_ids(pool)) >= 2)
            async with pool.acquire() as a, pool.acquire() as b:
                assert await scalar(stack, a, "SELECT 1") == 1
                assert await scalar(stack, b, "SELECT 1") == 1
            new = pool_ids(pool)
            assert not new & old
            created = pool.stats()["connection.created"] - created0
            if first is not None and second is not None:
                calls0 = first.calls
                assert second.calls == created >= 2  # the new provider, once per connection
                assert first.calls == calls0  # the old one never again

                async def old_gone() -> bool:
                    return not await server.alive(old)

                await _wait_until(old_gone)  # server-side: every old connection closed
                assert await server.alive(new) == new
    finally:
        await pool.close(timeout=5)
    with pytest.raises(PoolClosed):
        await pool.rotate()


@pytest.mark.parametrize("stack", PARAMS)
async def test_callers_are_served_throughout_rotate(
    request: pytest.FixtureRequest, stack: Stack
) -> None:
    url = url_for(request, stack)
    pool = await open_stack(stack, config(stack, url, min_size=1, max_size=3))
    errors: list[BaseException] = []
    served = 0
    stop = asyncio.Event()

    async def caller() -> None:
        nonlocal served
        while not stop.is_set():
            try:
                async with pool.acquire() as conn:
                    assert await scalar(stack, conn, "SELECT 1") == 1
                served += 1
            except Exception as exc:  # any error fails the test below
                errors.append(exc)
            await asyncio.sleep(0)

    try:
        tasks = [asyncio.create_task(caller()) for _ in range(4)]
        await _wait_until(lambda: served >= 10)
        for _ in range(3):
            before, old = served, pool_ids(pool)
            await pool.rotate()
            await _wait_until(lambda: served >= before + 10)  # noqa: B023 - awaited here
            await _wait_until(lambda: not (pool_ids(pool) & old))  # noqa: B023
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        assert errors == []
        assert pool.stats()["connection.count.used"] == 0
    finally:
        stop.set()
        await pool.close(timeout=5)
