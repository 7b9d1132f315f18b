"""The connection budget checked at open(), on every adapter x driver, against real servers.

Each test logs in as a fresh role limited by the server itself (PostgreSQL CONNECTION LIMIT,
MariaDB MAX_USER_CONNECTIONS): a pool whose max_size is above what the role may still open
warns once at open (ConnectionBudgetWarning naming the role's limit); one that fits is quiet;
SQLite (no server) is skipped without a query.
"""

from __future__ import annotations

import logging
import uuid
import warnings
from collections.abc import AsyncIterator

import pytest

from poolbridge import ConnectionBudgetWarning, PoolConfig, open_pool
from poolbridge.testing.admin import open_admin

from ..faults._harness import ALL_STACKS, Stack, require_stack, server_for

pytestmark = [pytest.mark.asyncio, pytest.mark.server, pytest.mark.timeout(60)]

ROLE_LIMIT = 3


async def _limited(url: str, limit: int) -> AsyncIterator[str]:
    admin = await open_admin(url)
    try:
        async with admin.limited_user(limit) as role_url:
            yield role_url
    finally:
        await admin.close()


def _config(stack: Stack, url: str, max_size: int, min_size: int = 1) -> PoolConfig:
    return PoolConfig(
        url=url,
        driver=stack.driver,
        min_size=min_size,
        max_size=max_size,
        acquire_timeout=5,
        name=f"pbbudget_{uuid.uuid4().hex[:8]}",
    )


async def _open_and_use(cfg: PoolConfig, adapter: str, concurrent: int) -> None:
    """Open, then hold ``concurrent`` connections at once (so the pool opens more)."""
    import asyncio

    from poolbridge.adapters.registry import get_adapter

    impl = get_adapter(adapter)
    async with open_pool(cfg, adapter=adapter) as pool:
        gate = asyncio.Event()
        ready = 0

        async def hold() -> None:
            nonlocal ready
            async with pool.acquire() as conn:
                ready += 1
                if ready == concurrent:
                    gate.set()
                await asyncio.wait_for(gate.wait(), 5)
                assert await impl.fetch_scalar(conn, "SELECT 1") == 1

        await asyncio.gather(*(hold() for _ in range(concurrent)))


def _budget_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, ConnectionBudgetWarning)]


@pytest.mark.parametrize("stack", ALL_STACKS)
async def test_open_warns_once_when_the_role_has_fewer_slots_than_max_size(
    stack: Stack, request: pytest.FixtureRequest
) -> None:
    require_stack(stack)
    url, _ = server_for(request, stack)
    async for role_url in _limited(url, ROLE_LIMIT):
        cfg = _config(stack, role_url, max_size=ROLE_LIMIT + 2)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            await _open_and_use(cfg, stack.adapter, concurrent=2)
        got = _budget_warnings(caught)
        assert len(got) == 1, f"{stack.id}: expected one budget warning at open, got {got}"
        assert f"the role's limit={ROLE_LIMIT}" in got[0], got[0]
        assert cfg.name in got[0] and "max_size=5" in got[0], got[0]
        password = cfg.database_url.password
        assert password and password not in got[0]


@pytest.mark.parametrize("stack", ALL_STACKS)
async def test_open_is_quiet_when_the_role_has_room(
    stack: Stack, request: pytest.FixtureRequest
) -> None:
    """A tight fit (the role's limit == max_size, warm-up of two at once) is room too."""
    require_stack(stack)
    url, _ = server_for(request, stack)
    async for role_url in _limited(url, ROLE_LIMIT):
        cfg = _config(stack, role_url, max_size=ROLE_LIMIT, min_size=2)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            await _open_and_use(cfg, stack.adapter, concurrent=2)
        assert _budget_warnings(caught) == [], stack.id


async def test_warnings_as_errors_do_not_fail_open(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """With warnings turned into errors (``-W error``) the advice is logged instead of
    failing the connect that carries it."""
    async for role_url in _limited(pg_url, ROLE_LIMIT):
        cfg = _config(Stack("asyncpg", "postgresql", "asyncpg"), role_url, ROLE_LIMIT + 2)
        with warnings.catch_warnings(), caplog.at_level(logging.WARNING, "poolbridge.budget"):
            warnings.simplefilter("error")
            await _open_and_use(cfg, "asyncpg", concurrent=2)
        logged = [r.getMessage() for r in caplog.records if r.name == "poolbridge.budget"]
        assert len(logged) == 1 and f"the role's limit={ROLE_LIMIT}" in logged[0], logged


@pytest.mark.parametrize("adapter", ["aiosqlite", "sqlalchemy", "tortoise", "peewee_async"])
async def test_sqlite_is_skipped(adapter: str, sqlite_url: str) -> None:
    from poolbridge.adapters.registry import get_adapter

    get_adapter(adapter).check_available()
    cfg = PoolConfig(url=sqlite_url, min_size=1, max_size=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await _open_and_use(cfg, adapter, concurrent=1)
    assert _budget_warnings(caught) == []
