"""Fixtures of the fault-injection tests: an embedded PostgreSQL this test run owns (so it
may be stopped and restarted) and server-side views."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from poolbridge.testing.embedded import EmbeddedPostgres

from ._harness import ServerView, Stack

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


#: (test function, stack id) -> why it fails today. Each becomes xfail(strict=True): the
#: failure stays visible in the report, and a fix makes the run fail until the entry is
#: removed. Tests are never loosened to pass (see docs/resilience.md).
KNOWN_FAILURES: dict[tuple[str, str], str] = {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        stack = callspec.params.get("stack") if callspec is not None else None
        if not isinstance(stack, Stack):
            continue
        name = getattr(item, "originalname", item.name)
        reason = KNOWN_FAILURES.get((name, stack.id))
        if reason is not None:
            item.add_marker(pytest.mark.xfail(reason=reason, strict=True))
