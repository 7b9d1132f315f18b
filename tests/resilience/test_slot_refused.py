"""A server that refuses a connection slot, on every adapter x driver, against real servers.

The role logs in limited by the server itself (PostgreSQL CONNECTION LIMIT, MariaDB
MAX_USER_CONNECTIONS) and two raw connections of that role take both of its slots, so each
connect the pool makes is refused (SQLSTATE 53300; MariaDB 1226). A slot freed while a
caller waits is taken (the connect waits for it within the caller's deadline); a slot that
stays taken ends in PoolTimeout at acquire_timeout, never the driver's refusal; at open, in a
ConnectError naming host:port. The server never holds more than the role's limit.
"""

from __future__ import annotations

import asyncio
import time
import uuid
import warnings
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from poolbridge import ConnectError, ConnectionBudgetWarning, PoolConfig, PoolTimeout, open_pool
from poolbridge.adapters.registry import get_adapter
from poolbridge.testing.admin import Admin, open_admin

from ..faults._harness import ALL_STACKS, Stack, require_stack, server_for

pytestmark = [pytest.mark.asyncio, pytest.mark.server, pytest.mark.timeout(60)]

LIMIT = 2
ACQUIRE_TIMEOUT = 1.5
#: a slot is freed this late: past the default retry policy's two pauses (0.1 s, 0.2 s)
FREED_AFTER = 0.6
#: scheduling slack on a shared 2-core machine (a bound, never a speed claim)
SLACK = 1.0


class Limited:
    """A role allowed :data:`LIMIT` connections, its URL, and raw connections holding slots."""

    def __init__(self, admin: Admin, role: str, url: str) -> None:
        self.admin = admin
        self.role = role
        self.url = url
        self.held: list[Any] = []

    async def hold(self) -> None:
        """Take one of the role's slots with a bare driver connection."""
        dbu = PoolConfig(url=self.url).database_url
        if self.admin.backend == "postgresql":
            import asyncpg

            conn: Any = await asyncpg.connect(
                host=dbu.host, port=dbu.port or 5432, user=dbu.username,
                password=dbu.password, database=dbu.database,
            )  # fmt: skip
        else:
            import aiomysql

            conn = await aiomysql.connect(
                host=dbu.host or "127.0.0.1", port=dbu.port or 3306, user=dbu.username,
                password=dbu.password or "", db=dbu.database,
            )  # fmt: skip
        self.held.append(conn)

    async def free_one(self) -> None:
        conn = self.held.pop()
        if self.admin.backend == "postgresql":
            await conn.close()
        else:
            await conn.ensure_closed()

    async def count(self) -> int:
        """The role's connections as the server counts them."""
        return await self.admin.count_role_connections(self.role)


@pytest_asyncio.fixture
async def limited(request: pytest.FixtureRequest, stack: Stack) -> AsyncIterator[Limited]:
    require_stack(stack)
    url, _ = server_for(request, stack)
    admin = await open_admin(url)
    try:
        async with admin.limited_user(LIMIT) as role_url:
            lim = Limited(admin, admin.role, role_url)  # type: ignore[attr-defined]
            try:
                for _ in range(LIMIT):
                    await lim.hold()
                assert await lim.count() == LIMIT
                yield lim
            finally:
                while lim.held:
                    await lim.free_one()
    finally:
        await admin.close()


def _config(stack: Stack, url: str, *, min_size: int = 0) -> PoolConfig:
    return PoolConfig(
        url=url,
        driver=stack.driver,
        min_size=min_size,
        max_size=1,
        acquire_timeout=ACQUIRE_TIMEOUT,
        connect_timeout=ACQUIRE_TIMEOUT,
        max_idle=None,
        name=f"pbslot_{uuid.uuid4().hex[:8]}",
    )


async def _open(stack: Stack, config: PoolConfig) -> Any:
    with warnings.catch_warnings():  # the role has fewer free slots than max_size: expected
        warnings.simplefilter("ignore", ConnectionBudgetWarning)
        return await open_pool(config, adapter=stack.adapter)


async def _acquire_and_query(stack: Stack, pool: Any) -> int:
    async with pool.acquire() as conn:
        return int(await get_adapter(stack.adapter).fetch_scalar(conn, "SELECT 1"))


async def _watch_count(lim: Limited, stop: asyncio.Event) -> int:
    """The most connections the server counted for the role until ``stop``."""
    most = 0
    while not stop.is_set():
        n = await lim.count()
        if n > LIMIT:
            # an attempt the server is about to refuse is listed for a moment (MariaDB
            # authenticates before it checks max_user_connections): a session that holds a
            # slot is still there a moment later
            await asyncio.sleep(0.1)
            n = await lim.count()
        most = max(most, n)
        await asyncio.sleep(0.05)
    return most


@pytest.mark.parametrize("stack", ALL_STACKS)
async def test_a_slot_freed_while_the_caller_waits_is_taken(limited: Limited, stack: Stack) -> None:
    pool = await _open(stack, _config(stack, limited.url))
    stop = asyncio.Event()
    watch = asyncio.create_task(_watch_count(limited, stop))
    try:
        t0 = time.monotonic()
        caller = asyncio.create_task(_acquire_and_query(stack, pool))
        await asyncio.sleep(FREED_AFTER)
        assert not caller.done(), "the connect cannot have succeeded: every slot was taken"
        await limited.free_one()
        assert await caller == 1
        took = time.monotonic() - t0
        assert took < ACQUIRE_TIMEOUT + SLACK, f"took {took:.2f}s"
    finally:
        stop.set()
        most = await watch
        await pool.close()
    assert most <= LIMIT, f"the server counted {most} connections of a role limited to {LIMIT}"


@pytest.mark.parametrize("stack", ALL_STACKS)
async def test_a_slot_that_stays_taken_is_pool_timeout(limited: Limited, stack: Stack) -> None:
    pool = await _open(stack, _config(stack, limited.url))
    stop = asyncio.Event()
    watch = asyncio.create_task(_watch_count(limited, stop))
    try:
        t0 = time.monotonic()
        with pytest.raises(PoolTimeout):
            await _acquire_and_query(stack, pool)
        took = time.monotonic() - t0
        # at acquire_timeout (SQLAlchemy's connect gives up when its next pause would end
        # past the deadline: up to max_backoff early), never long after it
        assert ACQUIRE_TIMEOUT - 0.5 <= took < ACQUIRE_TIMEOUT + SLACK, f"took {took:.2f}s"
    finally:
        stop.set()
        most = await watch
        await pool.close()
    assert most <= LIMIT, f"the server counted {most} connections of a role limited to {LIMIT}"


@pytest.mark.parametrize("stack", ALL_STACKS)
async def test_a_refused_slot_at_open_is_connect_error(limited: Limited, stack: Stack) -> None:
    config = _config(stack, limited.url, min_size=1)
    t0 = time.monotonic()
    with pytest.raises(ConnectError) as caught:
        pool = await _open(stack, config)
        await pool.close()
    took = time.monotonic() - t0
    assert took < ACQUIRE_TIMEOUT + SLACK, f"took {took:.2f}s"
    dbu = config.database_url
    text = str(caught.value)
    port = dbu.port or (5432 if stack.backend == "postgresql" else 3306)
    assert f"{dbu.host}:{port}" in text, text
    assert dbu.password and dbu.password not in text
    assert caught.value.retryable
