"""A task cancelled while Tortoise's in_transaction() opens its transaction gives the
connection back (Tortoise's own context would keep it checked out forever: its __aexit__,
the only place it releases, never runs when BEGIN is interrupted)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from poolbridge import PoolConfig
from poolbridge.adapters.tortoise import adapter

pytestmark = pytest.mark.asyncio

CASES = [
    ("sqlite_url", "aiosqlite"),
    ("pg_url", "asyncpg"),
    ("pg_url", "psycopg"),
    ("mysql_url", None),
]


def _in_transaction(conn: Any) -> bool | None:
    """The driver's own view of the connection's transaction (None: not asked)."""
    kind = type(conn).__module__.split(".", 1)[0]
    if kind == "asyncpg":
        return bool(conn.is_in_transaction())
    if kind == "psycopg":
        from psycopg.pq import TransactionStatus

        return bool(conn.info.transaction_status != TransactionStatus.IDLE)
    if kind == "aiosqlite":
        return bool(conn.in_transaction)
    return None


@pytest.mark.parametrize(("which", "driver"), CASES, ids=[d or "mysql" for _, d in CASES])
async def test_cancel_while_entering_in_transaction_leaks_nothing(
    request: pytest.FixtureRequest, which: str, driver: str | None
) -> None:
    url = str(request.getfixturevalue(which))
    config = PoolConfig(
        url=url, driver=driver, name=f"pbcancel_{uuid.uuid4().hex[:8]}",
        min_size=1, max_size=1, acquire_timeout=3.0,
    )  # fmt: skip
    pool = await adapter.open(config)
    enter = adapter.entry_points(pool)["in_transaction"]
    entered = 0
    try:

        async def worker() -> None:
            nonlocal entered
            async with enter() as run:
                entered += 1
                await run("SELECT 1")
                await asyncio.sleep(1.0)

        # cancel after 0, 1, 2, ... loop turns, then after growing delays: sweeps the
        # checkout, the BEGIN (a thread hop on SQLite, a round trip on a server) and the
        # statement inside the block
        for step in range(70):
            task = asyncio.create_task(worker())
            if step < 40:
                for _ in range(step):
                    await asyncio.sleep(0)
            else:
                await asyncio.sleep((step - 40) * 0.001)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            assert task.cancelled() or task.exception() is not None
            used = pool.stats()["connection.count.used"]
            assert used == 0, f"cancelled at step {step}: {used} still checked out"
        assert entered > 0, "no task ever got inside the transaction block"
        # the one connection (max_size=1) is free, usable and not left inside a transaction
        async with pool.acquire() as conn:
            assert _in_transaction(conn) in (False, None)
            assert await adapter.fetch_scalar(conn, "SELECT 1") == 1
        async with enter() as run:
            assert await run("SELECT 2") == 2
    finally:
        await pool.close(timeout=5)
