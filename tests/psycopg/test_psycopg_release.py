"""The psycopg adapter's release path runs in the caller's task (no shield, no task per
release): a release or checkout interrupted by cancellation must still close and replace
the connection, never leak it and never hand it out again. Real server; the stalled link
comes from poolbridge's TCP proxy."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import psycopg
import pytest

from poolbridge import ConnectionEvent, Hooks, PoolConfig, open_pool
from poolbridge.testing.servers.proxy import TcpProxy

pytestmark = pytest.mark.asyncio


def _name() -> str:
    return f"pbrel_{uuid.uuid4().hex[:8]}"


async def _gone(pid: int, url: str, seconds: float = 5.0) -> bool:
    """Whether backend ``pid`` has left pg_stat_activity within ``seconds``."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as admin:
        for _ in range(int(seconds / 0.05)):
            cur = await admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,))
            if await cur.fetchone() is None:
                return True
            await asyncio.sleep(0.05)
    return False


async def test_release_cancelled_mid_rollback_closes_and_replaces(pg_url: str) -> None:
    async with TcpProxy("127.0.0.1", 5432) as proxy:
        cfg = PoolConfig(url=proxy.url_for(pg_url), min_size=1, max_size=1, acquire_timeout=5,
                         name=_name())  # fmt: skip
        async with open_pool(cfg, adapter="psycopg") as pool:
            pids: list[int] = []

            async def user() -> None:
                async with pool.acquire() as conn:
                    await conn.execute("SELECT 1")  # a transaction: the release rolls back
                    pids.append(conn.info.backend_pid)
                    proxy.stall(None)  # ... and the ROLLBACK never gets an answer

            task = asyncio.create_task(user())
            await asyncio.sleep(0.3)
            assert pids and not task.done(), "the release should hang on the stalled link"
            # psycopg answers the first cancellation with a cancel request of its own (which
            # the stalled link swallows too); the second one interrupts that. psycopg_pool
            # counts a cancelled rollback at checkin as a failed one: it discards the
            # connection and the release completes (the task may end either way).
            task.cancel()
            await asyncio.sleep(0.05)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 2)
            assert pool.stats()["connection.count.used"] == 0
            await proxy.heal()
            # the interrupted connection was closed, not given back: the next caller gets a
            # new one from the single slot, in a clean state
            async with pool.acquire() as conn:
                assert conn.info.backend_pid != pids[0]
                assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
                await conn.execute("SELECT 1")
            assert await _gone(pids[0], pg_url), "the interrupted connection stayed open"
            st = pool.stats()
            assert st["connection.count.used"] == 0
            assert st["connection.closed"] >= 1


async def test_checkout_cancelled_in_async_hook_gives_the_connection_back(pg_url: str) -> None:
    entered = asyncio.Event()
    pids: list[int] = []

    async def slow_first_checkout(ev: ConnectionEvent) -> None:
        pids.append(int(ev.connection_id or 0))
        if len(pids) == 1:
            entered.set()
            await asyncio.sleep(10)

    cfg = PoolConfig(url=pg_url, min_size=1, max_size=1, acquire_timeout=3, name=_name())
    async with open_pool(
        cfg, adapter="psycopg", hooks=Hooks(on_checkout=slow_first_checkout)
    ) as pool:

        async def user() -> None:
            async with pool.acquire():
                raise AssertionError("the checkout should not complete")

        task = asyncio.create_task(user())
        await asyncio.wait_for(entered.wait(), 3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert pool.stats()["connection.count.used"] == 0
        # the single slot is free again, with a new connection (the interrupted one's state
        # was unknown: closed, not reused)
        async with pool.acquire() as conn:
            await conn.execute("SELECT 1")
            assert conn.info.backend_pid not in pids[:1]
        assert await _gone(pids[0], pg_url), "the interrupted connection stayed open"
        assert pool.stats()["connection.count.used"] == 0
