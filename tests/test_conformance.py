"""`make test` runs the shipped conformance suite against the real servers.

One test per adapter x backend. Each column is a pytest subprocess started in an empty
directory with ``--poolbridge-adapter``/``--poolbridge-dburl``/``--poolbridge-faults`` (the
way a user runs it); the columns run two at a time (they share nothing but the servers: every
suite test has its own role, tables and pool names). The high-availability rows of every
column share one replicated pair per backend, started once here; the destructive
``failover`` row (a fresh pair per column) runs under ``make soak``. A column passes when
its run passes: every row pass or closed, nothing failed or skipped. The matrix is printed
(``pytest -s`` shows it; a failure shows it too).

REQUIRED columns must exist: locally a missing adapter module is skipped, under CI=true it
fails. Every other installed adapter (Tortoise, peewee-async, third-party ones) is added for
each backend it declares.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from poolbridge.adapters.registry import BUILTIN_ADAPTERS, adapter_names, get_adapter
from poolbridge.testing.ha import Pair, PairSource
from tests.conftest import IN_CI, MYSQL_URL, PG_URL, _require

pytestmark = [pytest.mark.server, pytest.mark.timeout(900)]

#: (adapter, backend): the columns `make test` must prove: the default stack of each backend
REQUIRED = [
    ("psycopg", "postgresql"),
    ("sqlalchemy", "postgresql"),
    ("sqlalchemy", "mysql"),
    ("sqlalchemy", "sqlite"),
    ("asyncpg", "postgresql"),
    ("aiopg", "postgresql"),
    ("aiomysql", "mysql"),
    ("asyncmy", "mysql"),
    ("aiosqlite", "sqlite"),
]
SERVERS = {"postgresql": ("127.0.0.1", 5432, "PostgreSQL"), "mysql": ("127.0.0.1", 3306, "MariaDB")}
#: columns run at once: they mostly wait on servers and timeouts, not the CPU
JOBS = int(os.environ.get("POOLBRIDGE_CONFORMANCE_JOBS", "2"))


def _columns() -> list[tuple[str, str]]:
    columns = list(REQUIRED)
    for name in adapter_names(installed_only=True):
        for backend in get_adapter(name).drivers:
            if (name, backend) not in columns:
                columns.append((name, backend))
    return columns


def _present(adapter: str) -> bool:
    module = BUILTIN_ADAPTERS.get(adapter)
    return module is None or importlib.util.find_spec(module.partition(":")[0]) is not None


@dataclass
class Run:
    returncode: int
    output: str

    @property
    def matrix(self) -> str:
        marker = "poolbridge conformance matrix"
        return self.output.split(marker, 1)[1] if marker in self.output else "(no matrix)"


def _run_column(
    adapter: str, backend: str, workdir: Path, url: str | None = None, extra: Sequence[str] = ()
) -> Run:
    """One column's suite run; ``url`` replaces the backend's test server, ``extra`` adds
    pytest arguments (tests/test_conformance_pgbouncer.py: through pgbouncer)."""
    workdir.mkdir(parents=True)
    if url is None:
        url = {"postgresql": PG_URL, "mysql": MYSQL_URL}.get(backend, f"sqlite:///{workdir}/s.db")
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "-W",
            "ignore::DeprecationWarning",
            "-o",
            "asyncio_default_fixture_loop_scope=function",
            "--poolbridge-adapter",
            adapter,
            "--poolbridge-dburl",
            url,
            "--poolbridge-faults",
            *extra,
        ],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return Run(proc.returncode, proc.stdout + proc.stderr)


def _runnable(adapter: str, backend: str) -> bool:
    if not _present(adapter):
        return False
    server = SERVERS.get(backend)
    if server is None:
        return True
    import socket

    try:
        with socket.create_connection(server[:2], timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[tuple[str, str], Run]:
    """Run every selected, runnable column, JOBS at a time."""
    wanted = [
        item.callspec.params["column"]
        for item in request.session.items
        if item.module is request.module and hasattr(item, "callspec")
    ]
    todo = [c for c in dict.fromkeys(wanted) if _runnable(*c)]
    base = tmp_path_factory.mktemp("conformance")
    # one replicated pair per backend for every column's reading high-availability rows;
    # the destructive failover row (a fresh pair per column) is left to `make soak` and
    # `poolbridge check --faults` (tests/ha/test_failover_rows.py)
    pairs = PairSource()
    try:
        shared = pairs.start([b for b in dict.fromkeys(b for _, b in todo) if b in SERVERS])
        extra = {b: ["--poolbridge-requirement=!failover"] for _, b in todo}
        for backend, found in shared.items():
            if isinstance(found, Pair):
                extra[backend].append(f"--poolbridge-ha-dburl={found.dburl}")
        with ThreadPoolExecutor(max_workers=JOBS) as pool:
            futures = {
                c: pool.submit(_run_column, *c, base / f"{c[0]}-{c[1]}", extra=extra[c[1]])
                for c in todo
            }
            return {c: f.result() for c, f in futures.items()}
    finally:
        pairs.close()


@pytest.mark.parametrize("column", _columns(), ids=lambda c: f"{c[0]}-{c[1]}")
def test_suite_passes(column: tuple[str, str], runs: dict[tuple[str, str], Run]) -> None:
    adapter, backend = column
    if not _present(adapter):
        msg = f"adapter module {BUILTIN_ADAPTERS[adapter]} is not in the tree"
        if IN_CI:
            pytest.fail(f"{msg} (CI=true: every listed adapter must be present)")
        pytest.skip(msg)
    if backend in SERVERS:
        _require(*SERVERS[backend])  # skip locally, fail under CI
    _assert_passed(runs[column])


def test_suite_passes_on_uvloop(tmp_path: Path) -> None:
    """One column on uvloop (--poolbridge-loop): the engine and the asyncpg driver behave the
    same on libuv's loop; the run reports which loop it used."""
    pytest.importorskip("uvloop")
    _require(*SERVERS["postgresql"])
    run = _run_column(
        "asyncpg", "postgresql", tmp_path / "uvloop", extra=["--poolbridge-loop", "uvloop"]
    )
    assert "event loop: uvloop" in run.output, run.output[-2000:]
    _assert_passed(run)


def _assert_passed(run: Run) -> None:
    """The column's run passed: every row pass or closed, none failed or skipped."""
    print(run.matrix)
    failures = [line for line in run.output.splitlines() if line.startswith(("FAILED", "ERROR"))]
    assert run.returncode == 0, "\n".join([run.matrix, *failures, run.output[-3000:]])
    rows = [line.split() for line in run.matrix.splitlines() if line[:1].isalpha()]
    cells = [cell for row in rows if len(row) > 1 for cell in row[1:]]
    assert "FAIL" not in cells
    assert "pass" in cells, run.matrix
    assert "skip" not in cells, f"servers are up and faults enabled: nothing may skip\n{run.matrix}"
