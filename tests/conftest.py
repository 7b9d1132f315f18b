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


# -- which build of the pool engine runs (pure Python or compiled with mypyc) --------------
#: set by `make compiled-test`: the run is about the compiled build and must never pass on
#: the pure-Python sources by mistake (a wrong PYTHONPATH, a build that wrote nothing)
EXPECT_COMPILED = os.environ.get("POOLBRIDGE_EXPECT_COMPILED", "") == "1"


def pytest_report_header(config: pytest.Config) -> str:
    from poolbridge.engine.build import build_name

    return f"poolbridge pool engine: {build_name()}"


def pytest_configure(config: pytest.Config) -> None:
    if not EXPECT_COMPILED:
        return
    from poolbridge.engine.build import COMPILED_MODULES, compiled_modules

    pure = sorted(set(COMPILED_MODULES) - set(compiled_modules()))
    if pure:
        raise pytest.UsageError(
            "POOLBRIDGE_EXPECT_COMPILED=1 but these modules would be imported from Python "
            f"source, not their compiled extension modules: {', '.join(pure)} "
            "(build them with `make compiled` and put build/compiled on PYTHONPATH)"
        )
