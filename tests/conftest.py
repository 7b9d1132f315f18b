"""Shared fixtures: URLs of the real test servers.

A test that needs a server asks for ``pg_url`` / ``mysql_url`` / ``sqlite_url``. When the
server is unreachable the test is skipped locally, but under ``CI=true`` it FAILS: a missing
server in CI is a broken setup, never a pass.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_URL = os.environ.get("POOLBRIDGE_TEST_PG_URL", "postgresql://root@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("POOLBRIDGE_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def _require(host: str, port: int, what: str) -> None:
    if _reachable(host, port):
        return
    msg = f"{what} not reachable on {host}:{port}"
    if IN_CI:
        pytest.fail(f"{msg} (CI=true: a missing server is a failure)")
    pytest.skip(msg)


@pytest.fixture
def pg_url() -> str:
    _require("127.0.0.1", 5432, "PostgreSQL")
    return PG_URL


@pytest.fixture
def mysql_url() -> str:
    _require("127.0.0.1", 3306, "MariaDB")
    return MYSQL_URL


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'poolbridge-test.db'}"
