"""Stock parity: the same scenario on a stock ``sqlalchemy.ext.asyncio.create_async_engine``
(native arguments written by hand) and on poolbridge's engine, comparing what the user
sees: ``engine.pool``'s answers, error classes on an exhausted, disposed or broken pool,
``Connection.info``, the MariaDB dialect, session settings seen by the server, and the
pool creator called without a connection record (the ``async_creator`` recipes)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.ext.asyncio import create_async_engine as stock_create
from sqlalchemy.util.concurrency import greenlet_spawn

from poolbridge.adapters.sqlalchemy import close_engine, create_async_engine, warm_up

from .conftest import Target

pytestmark = pytest.mark.asyncio

Scenario = Callable[[AsyncEngine], Awaitable[Any]]


def _stock_url(t: Target, query: str = "") -> str:
    """The hand-written URL for the stock engine."""
    if t.backend == "postgresql":
        base = t.url.split("://", 1)[1]
        return f"postgresql+{t.driver}://{base}{query}"
    if t.backend == "mysql":
        base = t.url.split("://", 1)[1]
        return f"mysql+{t.driver}://{base}{query}"
    return f"sqlite+aiosqlite:///{t.url.split(':///', 1)[1]}"


async def _both(
    t: Target, scenario: Scenario, *, max_size: int = 2, timeout: float = 0.3, **pb: Any
) -> tuple[Any, Any]:
    """Run ``scenario`` on a stock engine (QueuePool pool_size=max_size, max_overflow=0)
    and on poolbridge's engine with the same size and timeout."""
    stock = stock_create(_stock_url(t), pool_size=max_size, max_overflow=0, pool_timeout=timeout)
    try:
        expected = await scenario(stock)
    finally:
        await stock.dispose()
    ours = await warm_up(
        create_async_engine(t.config(min_size=0, max_size=max_size, acquire_timeout=timeout, **pb))
    )
    try:
        got = await scenario(ours)
    finally:
        await close_engine(ours)
    return expected, got


def _answers(engine: AsyncEngine) -> tuple[Any, ...]:
    pool: Any = engine.sync_engine.pool
    return (pool.size(), pool.checkedin(), pool.checkedout(), pool.overflow(), pool.timeout())


async def test_pool_answers_like_queuepool(target: Target) -> None:
    async def scenario(engine: AsyncEngine) -> list[Any]:
        seen = [_answers(engine)]
        a = await engine.connect()
        seen.append(_answers(engine))
        b = await engine.connect()
        seen.append(_answers(engine))
        await a.close()
        seen.append(_answers(engine))
        await b.close()
        seen.append(_answers(engine))
        seen.append(engine.sync_engine.pool.status())
        return seen

    expected, got = await _both(target, scenario)
    assert got == expected


async def test_exhausted_pool_raises_sqlalchemy_timeout(target: Target) -> None:
    async def scenario(engine: AsyncEngine) -> list[type[BaseException]]:
        held = [await engine.connect(), await engine.connect()]
        try:
            with pytest.raises(sa_exc.TimeoutError) as info:
                await engine.connect()
            return [c for c in type(info.value).__mro__ if c.__module__.startswith("sqlalchemy")]
        finally:
            for c in held:
                await c.close()

    expected, got = await _both(target, scenario)
    assert got == expected  # poolbridge's PoolTimeout is also every SQLAlchemy class stock has


async def test_zero_timeout_fails_at_once_when_exhausted(target: Target) -> None:
    async def scenario(engine: AsyncEngine) -> tuple[bool, bool]:
        first = await engine.connect()  # a free slot: opens, no wait needed
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            with pytest.raises(sa_exc.TimeoutError):
                await engine.connect()
        finally:
            await first.close()
        return True, loop.time() - start < 0.2

    expected, got = await _both(target, scenario, max_size=1, timeout=0)
    assert got == expected == (True, True)


async def test_disposed_engine_serves_a_fresh_pool(target: Target) -> None:
    async def scenario(engine: AsyncEngine) -> tuple[Any, ...]:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        before = engine.sync_engine.pool
        await engine.dispose()
        after_dispose = _answers(engine)
        async with engine.connect() as conn:
            one = (await conn.execute(text("SELECT 1"))).scalar()
        return engine.sync_engine.pool is not before, after_dispose, one

    expected, got = await _both(target, scenario)
    assert got == expected


async def test_connection_info_is_the_applications(target: Target) -> None:
    async def scenario(engine: AsyncEngine) -> tuple[dict[str, Any], dict[str, Any]]:
        async with engine.connect() as conn:
            first = dict(conn.info)
            conn.info["foo"] = "bar"
        async with engine.connect() as conn:  # max_size=1: the same connection
            again = dict(conn.info)
        return first, again

    expected, got = await _both(target, scenario, max_size=1)
    assert got == expected == ({}, {"foo": "bar"})


async def test_broken_connection_error_class(server_target: Target) -> None:
    t = server_target
    assert t.server is not None
    server = t.server
    id_sql = "SELECT pg_backend_pid()" if t.backend == "postgresql" else "SELECT CONNECTION_ID()"

    async def scenario(engine: AsyncEngine) -> tuple[type[BaseException], bool]:
        async with engine.connect() as conn:
            sid = (await conn.execute(text(id_sql))).scalar()
        await server.kill(sid)
        await asyncio.sleep(0.2)
        async with engine.connect() as conn:
            with pytest.raises(sa_exc.DBAPIError) as info:
                await conn.execute(text("SELECT 1"))
        return type(info.value), info.value.connection_invalidated

    expected, got = await _both(t, scenario, max_size=1, pre_ping=False)
    assert got == expected


async def test_pool_creator_without_a_record(target: Target) -> None:
    """The pool's creator called directly (SQLAlchemy passes no connection record) gives
    a working driver connection through every listener, as stock."""

    async def scenario(engine: AsyncEngine) -> bool:
        creator = engine.sync_engine.pool._creator
        conn = await greenlet_spawn(creator)
        await greenlet_spawn(conn.close)
        return True

    expected, got = await _both(target, scenario)
    assert got == expected


async def test_mariadb_scheme_keeps_the_mariadb_dialect(server_target: Target) -> None:
    t = server_target
    if t.backend != "mysql":
        pytest.skip("MariaDB URLs")
    url = f"mariadb+{t.driver}://{t.url.split('://', 1)[1]}"
    stock = stock_create(url)
    try:
        async with stock.connect() as conn:
            await conn.execute(text("SELECT 1"))
        expected = (stock.dialect.name, stock.dialect.is_mariadb)
    finally:
        await stock.dispose()
    from poolbridge.config.model import PoolConfig

    ours = await warm_up(create_async_engine(PoolConfig(url=url, min_size=0, max_size=1)))
    try:
        async with ours.connect() as conn:
            await conn.execute(text("SELECT 1"))
        assert (ours.dialect.name, ours.dialect.is_mariadb) == expected == ("mariadb", True)
    finally:
        await close_engine(ours)


async def _app_name(conn: AsyncConnection) -> Any:
    return (await conn.execute(text("SELECT current_setting('application_name')"))).scalar()


@pytest.mark.parametrize("where", ["url", "session"])
async def test_application_name_reaches_the_server(server_target: Target, where: str) -> None:
    t = server_target
    if t.backend != "postgresql":
        pytest.skip("application_name is PostgreSQL's")
    name = f"pbapp-{uuid.uuid4().hex[:8]}"
    pool_name = f"pbpool-{uuid.uuid4().hex[:8]}"
    # stock, by hand: asyncpg takes it in server_settings, libpq from the URL
    if t.driver == "asyncpg":
        stock = stock_create(
            _stock_url(t), connect_args={"server_settings": {"application_name": name}}
        )
    else:
        stock = stock_create(_stock_url(t, f"?application_name={name}"))
    try:
        async with stock.connect() as conn:
            expected = await _app_name(conn)
    finally:
        await stock.dispose()
    if where == "url":
        sep = "&" if "?" in t.url else "?"
        config = t.config(name=pool_name, min_size=0, max_size=1)
        from dataclasses import replace

        config = replace(config, url=f"{t.url}{sep}application_name={name}")
    else:
        config = t.config(
            name=pool_name, min_size=0, max_size=1, session={"application_name": name}
        )
    ours = await warm_up(create_async_engine(config))
    try:
        async with ours.connect() as conn:
            got = await _app_name(conn)
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar()
            assert t.server is not None
            seen = await t.server.pg_fetchval(  # the server's own view of the session
                "SELECT application_name FROM pg_stat_activity WHERE pid = $1", pid
            )
    finally:
        await close_engine(ours)
    assert got == expected == seen == name


async def test_pool_pre_ping_argument_is_honoured(server_target: Target) -> None:
    """SQLAlchemy's own ``pool_pre_ping=True`` keeps its meaning (a connection killed by the
    server is replaced at checkout, the caller sees no error), as on a stock engine."""
    t = server_target
    assert t.server is not None
    server = t.server
    id_sql = "SELECT pg_backend_pid()" if t.backend == "postgresql" else "SELECT CONNECTION_ID()"

    async def scenario(engine: AsyncEngine) -> int:
        async with engine.connect() as conn:
            sid = (await conn.execute(text(id_sql))).scalar()
        await server.kill(sid)
        await asyncio.sleep(0.2)
        async with engine.connect() as conn:
            return int((await conn.execute(text("SELECT 1"))).scalar())

    stock = stock_create(_stock_url(t), pool_size=1, max_overflow=0, pool_pre_ping=True)
    try:
        expected = await scenario(stock)
    finally:
        await stock.dispose()
    ours = await warm_up(create_async_engine(t.config(min_size=0, max_size=1), pool_pre_ping=True))
    try:
        assert await scenario(ours) == expected == 1
    finally:
        await close_engine(ours)
