"""Fixtures of the fault-injection tests: an embedded PostgreSQL this test run owns (so it
may be stopped and restarted), server-side views, and a TCP proxy."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from poolbridge.testing.embedded import EmbeddedPostgres
from poolbridge.testing.proxy import TcpProxy

from ._harness import ServerView

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def embedded_server() -> Iterator[EmbeddedPostgres]:
    """One embedded PostgreSQL for the whole run (stopped and removed at the end)."""
    try:
        server = EmbeddedPostgres()
        server.start()
    except Exception as exc:  # pragma: no cover - environment dependent
        if IN_CI:
            pytest.fail(f"embedded PostgreSQL did not start (CI=true): {exc}")
        pytest.skip(f"embedded PostgreSQL did not start: {exc}")
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def embedded_pg(embedded_server: EmbeddedPostgres) -> EmbeddedPostgres:
    """The embedded server, running (a previous test may have left it stopped)."""
    embedded_server.start()
    return embedded_server


@pytest.fixture
def pg_view(pg_url: str) -> ServerView:
    return ServerView(pg_url, "postgresql")


@pytest.fixture
def mysql_view(mysql_url: str) -> ServerView:
    return ServerView(mysql_url, "mysql")


@pytest_asyncio.fixture
async def pg_proxy(pg_url: str) -> AsyncIterator[TcpProxy]:
    async with TcpProxy("127.0.0.1", 5432) as proxy:
        yield proxy


@pytest_asyncio.fixture
async def mysql_proxy(mysql_url: str) -> AsyncIterator[TcpProxy]:
    async with TcpProxy("127.0.0.1", 3306) as proxy:
        yield proxy
