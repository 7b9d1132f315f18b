"""Connection settings reach the server; passwords stay out of every output."""

from __future__ import annotations

import asyncio
import logging
import time
import warnings

import pytest
import sqlalchemy.exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine as sa_create_async_engine

from poolbridge.adapters.sqlalchemy import (
    adapter,
    close_engine,
    create_async_engine,
    engine_kwargs,
    engine_state,
    warm_up,
)
from poolbridge.errors import UnsupportedOptionError, UnsupportedOptionWarning

from .conftest import Target

pytestmark = pytest.mark.asyncio


async def test_session_isolation_and_name_reach_the_server(server_target: Target) -> None:
    t = server_target
    if t.backend == "postgresql":
        session = {"work_mem": "8MB"}
        checks = {
            "SHOW work_mem": "8MB",
            "SHOW transaction_isolation": "serializable",
            "SELECT current_setting('application_name')": None,  # the pool name
        }
    else:
        session = {"time_zone": "+02:00"}
        checks = {
            "SELECT @@session.time_zone": "+02:00",
            "SELECT @@session.tx_isolation": "SERIALIZABLE",
        }
    config = t.config(min_size=1, max_size=1, session=session, isolation_level="serializable")
    engine = await warm_up(create_async_engine(config))
    try:
        async with engine.connect() as conn:
            for sql, expected in checks.items():
                got = (await conn.exec_driver_sql(sql)).scalar()
                assert got == (config.name if expected is None else expected), sql
    finally:
        await close_engine(engine)


async def test_statement_timeout_stops_long_statements(server_target: Target) -> None:
    t = server_target
    engine = await warm_up(
        create_async_engine(t.config(min_size=1, max_size=1, statement_timeout=0.3))
    )
    try:
        start = time.monotonic()
        sql = "SELECT pg_sleep(3)" if t.backend == "postgresql" else "SELECT SLEEP(3)"
        async with engine.connect() as conn:
            with pytest.raises(sqlalchemy.exc.DBAPIError) as info:
                await conn.exec_driver_sql(sql)
        assert "statement timeout" in str(info.value) or "max_statement_time" in str(info.value)
        assert time.monotonic() - start < 2.5
    finally:
        await close_engine(engine)


async def test_asyncpg_without_statement_cache_leaves_no_prepared_statement(
    pg_url: str,
) -> None:
    from poolbridge.config.model import PoolConfig

    config = PoolConfig(url=pg_url, driver="asyncpg", min_size=1, max_size=1,
                        statement_cache=False)  # fmt: skip
    engine = await warm_up(create_async_engine(config))
    try:
        async with engine.connect() as conn:
            for i in range(5):
                await conn.execute(text(f"SELECT CAST(:x AS int) + {i}"), {"x": i})
            left = (
                await conn.exec_driver_sql("SELECT count(*) FROM pg_prepared_statements")
            ).scalar()
            assert left == 0  # with the statement cache all 5 (and this one) would be there
        async with engine.connect() as conn:  # autocommit-free reuse still works
            assert (
                await conn.execute(text("SELECT CAST(:x AS int) * 2"), {"x": 21})
            ).scalar() == 42
    finally:
        await close_engine(engine)


async def test_password_provider_called_per_connection_and_never_printed(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from poolbridge.config.model import PoolConfig

    secret = "pw-9f8e7d6c-top-secret"
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        return secret

    config = PoolConfig(url=pg_url, min_size=2, max_size=3, password=provider)
    caplog.set_level(logging.DEBUG)
    engine = await warm_up(create_async_engine(config, echo="debug", echo_pool="debug"))
    try:
        assert calls == 2  # one per physical connection (trust auth ignores it)
        async with engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")
        outputs = [repr(engine), str(engine.url), repr(engine.sync_engine.pool),
                   engine.sync_engine.pool.status(), caplog.text]  # fmt: skip
        assert all(secret not in o for o in outputs)
    finally:
        await close_engine(engine)
    assert engine_state(engine).recorder.created == calls


async def test_string_password_hidden_in_reprs_and_logs(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from poolbridge.config.model import PoolConfig

    secret = "pw-1a2b3c4d-string-secret"
    config = PoolConfig(url=pg_url, min_size=1, max_size=1, password=secret)
    caplog.set_level(logging.DEBUG)
    pool = await adapter.open(config)
    try:
        async with pool.acquire() as conn:
            await conn.exec_driver_sql("SELECT 1")
        for o in (repr(pool), repr(pool.native), str(pool.native.url), caplog.text,
                  repr(adapter.translate(config))):  # fmt: skip
            assert secret not in o
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnsupportedOptionWarning)
            kw = engine_kwargs(config)
        assert secret not in repr(kw)
    finally:
        await pool.close()


async def test_in_memory_sqlite_one_connection() -> None:
    from poolbridge.config.model import PoolConfig

    with pytest.raises(UnsupportedOptionError):
        create_async_engine(PoolConfig(url="sqlite://", max_size=2))
    config = PoolConfig(url="sqlite://", max_size=1, max_lifetime=None, acquire_timeout=0.3)
    engine = await warm_up(create_async_engine(config))
    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql("CREATE TABLE t (x INT)")
            await conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        async with engine.connect() as conn:  # same database: same connection
            assert (await conn.exec_driver_sql("SELECT count(*) FROM t")).scalar() == 1
    finally:
        await close_engine(engine)


async def test_plain_engine_kwargs_work_with_sqlalchemy_alone(target: Target) -> None:
    config = target.config(min_size=0, max_size=2, max_idle=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsupportedOptionWarning)
        engine = sa_create_async_engine(**engine_kwargs(config))
    try:
        async with engine.connect() as conn:
            assert (await conn.exec_driver_sql("SELECT 1")).scalar() == 1
        assert engine.pool.size() == 2  # type: ignore[attr-defined]
    finally:
        await engine.dispose()


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg", "aiomysql", "asyncmy"])
async def test_silent_server_is_given_up_after_connect_or_acquire_timeout(driver: str) -> None:
    """A server that accepts TCP and never answers: connect_timeout bounds each attempt,
    acquire_timeout bounds the caller (PoolTimeout chaining the connect error)."""
    from poolbridge.config.model import PoolConfig, RetryPolicy
    from poolbridge.errors import PoolTimeout

    accepted: list[object] = []

    async def silent(reader: object, writer: object) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    scheme = "postgresql" if driver in ("asyncpg", "psycopg") else "mysql"
    url = f"{scheme}://root@127.0.0.1:{port}/test"
    try:
        once = RetryPolicy(attempts=1)
        # (libpq itself takes whole seconds >= 2; the connect wrapper bounds it precisely)
        cfg = PoolConfig(url=url, driver=driver, min_size=0, max_size=1, connect_timeout=0.4,
                         acquire_timeout=10, retry=once)  # fmt: skip
        engine = await warm_up(create_async_engine(cfg))
        start = time.monotonic()
        with pytest.raises(Exception) as info:
            await engine.connect()
        assert time.monotonic() - start < cfg.connect_timeout + 1.5
        assert not isinstance(info.value, PoolTimeout)
        await close_engine(engine)

        cfg = PoolConfig(url=url, driver=driver, min_size=0, max_size=1, connect_timeout=10,
                         acquire_timeout=0.5)  # fmt: skip
        engine = await warm_up(create_async_engine(cfg))
        start = time.monotonic()
        with pytest.raises(PoolTimeout) as timeout_info:
            await engine.connect()
        assert time.monotonic() - start < 2.5
        assert timeout_info.value.__cause__ is not None
        await close_engine(engine)
        assert accepted  # the attempts really reached the silent server
    finally:
        server.close()
        for w in accepted:
            w.close()  # type: ignore[attr-defined]
