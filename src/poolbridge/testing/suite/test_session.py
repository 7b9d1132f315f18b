"""Rows about what a connection is like and how it is made: session settings,
statement_timeout, isolation_level, statement_cache, connect_timeout, retry."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from urllib.parse import urlsplit, urlunsplit

import pytest

from poolbridge.config.model import RetryPolicy
from poolbridge.testing.harness import Case, Session
from poolbridge.testing.servers.fakes import FakeServer, RefuseFirstProxy


def _with_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    new = f"{netloc[0]}@{host}" if len(netloc) == 2 else host
    return urlunsplit((parts.scheme, new, parts.path, parts.query, parts.fragment))


async def _session(s: Session) -> None:
    if s.backend == "postgresql":
        settings, sql, want = {"search_path": "pb_nowhere, public"}, "SHOW search_path", None
    else:
        settings, sql, want = {"time_zone": "+03:00"}, "SELECT @@session.time_zone", "+03:00"
    pool = await s.open(s.config(min_size=1, max_size=2, session=settings))
    async with s.use(pool) as a, s.use(pool) as b:  # the warm one and a new one
        for run in (a, b):
            value = str(await run(sql))
            if want is None:
                assert value.replace(" ", "") == "pb_nowhere,public", value
            else:
                assert value == want


@pytest.mark.poolbridge_requirement("session")
def test_session_settings(poolbridge_case: Case) -> None:
    poolbridge_case.run(_session)


async def _statement_timeout(s: Session) -> None:
    pool = await s.open(s.config(min_size=1, max_size=1, statement_timeout=0.5))
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    result: object = "not run"
    with contextlib.suppress(Exception):
        async with s.use(pool) as run:
            result = await run(s.sleep_sql(4))
    elapsed = loop.time() - t0
    assert elapsed < 3.0, f"a 4 s statement ran {elapsed:.2f} s with statement_timeout=0.5"
    assert result in ("not run", 1), f"the statement completed normally: {result!r}"
    async with s.use(pool) as run:  # the pool still serves
        assert await run("SELECT 1") == 1


@pytest.mark.poolbridge_requirement("statement_timeout")
def test_statement_timeout(poolbridge_case: Case) -> None:
    poolbridge_case.run(_statement_timeout)


async def _isolation_level(s: Session) -> None:
    pool = await s.open(s.config(min_size=1, max_size=1, isolation_level="serializable"))
    async with s.use(pool) as run:
        if s.backend == "postgresql":
            value = await run("SHOW transaction_isolation")
        else:
            try:
                value = await run("SELECT @@session.transaction_isolation")
            except Exception:  # MariaDB < 11.1
                value = None
            if value is None:
                value = await run("SELECT @@session.tx_isolation")
    assert str(value).lower().replace("-", " ") == "serializable", value


@pytest.mark.poolbridge_requirement("isolation_level")
def test_isolation_level(poolbridge_case: Case) -> None:
    poolbridge_case.run(_isolation_level)


async def _statement_cache(s: Session) -> None:
    pool = await s.open(s.config(min_size=1, max_size=1, statement_cache=False))
    async with s.use(pool) as run:
        for _ in range(10):
            assert await run("SELECT 1 + 1") == 2
        if s.backend == "postgresql":
            assert await run("SELECT count(*) FROM pg_prepared_statements") == 0
        else:
            prepared = await run(
                "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS "
                "WHERE VARIABLE_NAME = 'COM_STMT_PREPARE'"
            )
            assert int(prepared or 0) == 0


@pytest.mark.poolbridge_requirement("statement_cache")
def test_statement_cache_off(poolbridge_case: Case) -> None:
    poolbridge_case.run(_statement_cache)


async def _connect_timeout(s: Session) -> None:
    fake = FakeServer()
    await fake.start()
    acquire_timeout = 6.0
    try:
        cfg = s.config(
            url=_with_port(s.url, fake.port),
            min_size=1,
            max_size=1,
            connect_timeout=0.5,
            acquire_timeout=acquire_timeout,
            retry=RetryPolicy(attempts=1),
        )
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(Exception):  # noqa: B017 - any error: the server never answers
            pool = await s.open(cfg)
            async with pool.acquire():
                pass
        elapsed = loop.time() - t0
        gc.collect()  # some drivers leave a timed-out socket to the garbage collector
        await asyncio.sleep(0.2)
    finally:
        await fake.stop()
    assert fake.accepted and fake.held is not None, "the client never reached the server"
    # libpq counts whole seconds with a 2 s minimum: allow that plus scheduling slack
    gave_up = [
        elapsed < acquire_timeout - 1.0,  # the open failed on connect_timeout, not later
        bool(fake.held) and fake.held[0] < 4.5,  # the first attempt hung up in time
        len(fake.accepted) >= 2 and fake.accepted[1] - fake.accepted[0] < 4.5,  # next try
    ]
    assert any(gave_up), (
        f"no sign that an attempt was given up after connect_timeout=0.5: open failed after "
        f"{elapsed:.2f} s, attempts held {fake.held}, accepted at {fake.accepted}"
    )


@pytest.mark.poolbridge_requirement("connect_timeout")
def test_connect_timeout(poolbridge_case: Case) -> None:
    poolbridge_case.run(_connect_timeout)


async def _retry(s: Session) -> None:
    port = urlsplit(s.url).port or (5432 if s.backend == "postgresql" else 3306)
    proxy = RefuseFirstProxy(port)
    await proxy.start()
    try:
        cfg = s.config(
            url=_with_port(s.url, proxy.port),
            min_size=1,
            max_size=1,
            acquire_timeout=8.0,
            retry=RetryPolicy(attempts=3, initial_backoff=0.05, max_backoff=0.2),
        )
        pool = await s.open(cfg)
        async with s.use(pool) as run:
            assert await run("SELECT 1") == 1
        st = pool.stats()
        await pool.close()
    finally:
        await proxy.stop()
    assert proxy.accepted >= 2, "the refused first attempt was not retried"
    assert st["connection.errors"] + st["connection.retries"] >= 1, st


@pytest.mark.poolbridge_requirement("retry")
def test_retry_after_refused_connect(poolbridge_case: Case) -> None:
    poolbridge_case.run(_retry)
