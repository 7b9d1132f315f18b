"""``close()`` means the same on every stack: drain for ``timeout`` s (None: the config's
``acquire_timeout``), then terminate what is still checked out — never a hang.

The held connection is checked server-side: after close it is gone, however the caller
that forgot it behaves.
"""

from __future__ import annotations

import asyncio
import logging
from time import monotonic

import pytest

from poolbridge.errors import PoolClosed

from ._stacks import PARAMS, Server, Stack, config, open_stack, pool_ids, scalar, url_for

pytestmark = pytest.mark.asyncio

ACQUIRE_TIMEOUT = 0.6
#: slack for closing the idle connections and terminating the held one (loaded CI machine)
MARGIN = 3.0


@pytest.mark.parametrize("stack", PARAMS)
async def test_close_default_deadline_is_acquire_timeout(
    stack: Stack, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    url = url_for(request, stack)
    pool = await open_stack(
        stack, config(stack, url, min_size=1, max_size=2, acquire_timeout=ACQUIRE_TIMEOUT)
    )
    released = asyncio.Event()
    got = asyncio.Event()
    ids: set[object] = set()

    async def forgetful() -> None:
        async with pool.acquire() as conn:
            assert await scalar(stack, conn, "SELECT 1") == 1
            ids.update(pool_ids(pool))
            got.set()
            await released.wait()  # holds the connection until cancelled

    holder = asyncio.create_task(forgetful())
    try:
        await asyncio.wait_for(got.wait(), 10)
        assert ids or stack.backend == "sqlite"
        caplog.set_level(logging.WARNING, logger="poolbridge")
        started = monotonic()
        await asyncio.wait_for(pool.close(), ACQUIRE_TIMEOUT + MARGIN)
        took = monotonic() - started
        # it drained first (waited for the holder) ...
        assert took >= ACQUIRE_TIMEOUT * 0.8, f"close returned after {took:.2f}s, before draining"
        # ... then terminated the held connection, and said so
        assert "still checked out at close" in caplog.text
        async with Server(stack, url) as server:
            gone_by = monotonic() + 5.0
            while await server.alive(ids) and monotonic() < gone_by:
                await asyncio.sleep(0.05)
            assert await server.alive(ids) == set()
        with pytest.raises(PoolClosed):
            async with pool.acquire():
                pass
    finally:
        holder.cancel()
        await asyncio.gather(holder, return_exceptions=True)
        await pool.close(0)


@pytest.mark.parametrize("stack", PARAMS)
async def test_close_zero_terminates_at_once(stack: Stack, request: pytest.FixtureRequest) -> None:
    url = url_for(request, stack)
    pool = await open_stack(stack, config(stack, url, min_size=1, max_size=2, acquire_timeout=30))
    hold = asyncio.Event()
    got = asyncio.Event()

    async def holder_body() -> None:
        async with pool.acquire() as conn:
            assert await scalar(stack, conn, "SELECT 1") == 1
            got.set()
            await hold.wait()

    holder = asyncio.create_task(holder_body())
    try:
        await asyncio.wait_for(got.wait(), 10)
        started = monotonic()
        await asyncio.wait_for(pool.close(0), MARGIN)
        assert monotonic() - started < MARGIN
    finally:
        holder.cancel()
        await asyncio.gather(holder, return_exceptions=True)
