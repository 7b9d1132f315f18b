"""`make test` runs the conformance suite through a real pgbouncer in transaction pooling.

One pgbouncer of our own (:class:`poolbridge.testing.servers.pgbouncer.PgBouncer`: its own ini on a
free loopback port, ``pool_mode = transaction``, ``max_prepared_statements = 0`` where the
version knows the option, the suite's per-test roles checked by SCRAM through auth_query)
stands in front of the system PostgreSQL. Each column runs the installed suite in a pytest
subprocess with ``--poolbridge-pgbouncer``, the way a user runs it: the suite's pools get
``statement_cache=False``, and their connections are counted as pgbouncer clients with SHOW
CLIENTS (pgbouncer's own ones with SHOW SERVERS). Columns run three at a time with the helpers
of tests/test_conformance.py, and pass when every row passes or is closed for pgbouncer with
its reason (:data:`poolbridge.testing.requirements.TARGET_CLOSED`).

Without ``statement_cache=False`` the same suite fails with the prepared-statement error:
the URL's ``?statement_cache=true`` beats the suite's setting, and two rows that run many
transactions over several connections are enough. That holds for the stacks on asyncpg,
which prepares every statement; psycopg prepares only statements with parameters run five
times (the suite's are parameterless, sent by the simple protocol), so its failure is shown
with bound parameters in tests/faults/test_pgbouncer.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from poolbridge.testing.servers.pgbouncer import PgBouncer, pgbouncer_binary
from tests.conftest import IN_CI, PG_URL, _require
from tests.test_conformance import Run, _assert_passed, _present, _run_column

pytestmark = [pytest.mark.server, pytest.mark.timeout(900)]

#: (adapter, driver): the stacks that prepare statements, run through pgbouncer
COLUMNS = [
    ("asyncpg", "asyncpg"),
    ("psycopg", "psycopg"),
    ("sqlalchemy", "asyncpg"),
    ("sqlalchemy", "psycopg"),
    ("tortoise", "asyncpg"),
    ("tortoise", "psycopg"),
]
#: the columns whose suite run must fail with the statement cache on
CACHE_ON = [c for c in COLUMNS if c[1] == "asyncpg"]
#: rows that run many transactions over several connections of one pool
CACHE_ON_ROWS = "max_size or cancel_storm"
#: suite runs at once: a run mostly waits (timeouts, idle periods), so three share two cores
JOBS = 3
#: server connections per role and database; at least the largest max_size of a suite
#: pool: a stack that keeps a transaction open while checked out (psycopg, SQLAlchemy)
#: holds a server connection for as long, and a smaller pool would make the rest wait
POOL_SIZE = 5


def _url(bouncer: PgBouncer, driver: str, query: str = "") -> str:
    scheme, rest = bouncer.url_for(PG_URL).split("://", 1)
    return f"{scheme.split('+', 1)[0]}+{driver}://{rest}{query}"


@pytest.fixture(scope="module")
def bouncer() -> Iterator[PgBouncer]:
    _require("127.0.0.1", 5432, "PostgreSQL")
    if pgbouncer_binary() is None:
        msg = "pgbouncer is not installed (make pgbouncer)"
        if IN_CI:
            pytest.fail(f"{msg} (CI=true)")
        pytest.skip(msg)
    # server connections of a finished test's role close soon (the suite also terminates
    # them when it drops the role): PostgreSQL's connections are shared with other runs.
    # Round robin: a client's consecutive transactions go to different server connections
    # even when its pool's tasks do not overlap (pgbouncer reuses the last one by default)
    extra = {"server_idle_timeout": "10", "server_round_robin": "1"}
    with PgBouncer(default_pool_size=POOL_SIZE, extra=extra) as b:
        yield b


def _key(column: tuple[str, str], cache: bool) -> tuple[str, str, bool]:
    return (*column, cache)


@pytest.fixture(scope="module")
def runs(
    request: pytest.FixtureRequest,
    bouncer: PgBouncer,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[tuple[str, str, bool], Run]:
    """Every selected run, JOBS at a time: the suite with statement_cache=False (all rows),
    and with the cache on (two rows)."""
    wanted: list[tuple[str, str, bool]] = []
    for item in request.session.items:
        if item.module is request.module and hasattr(item, "callspec"):
            params = item.callspec.params
            if "column" in params:
                cache = (
                    item.originalname == test_suite_fails_through_pgbouncer_with_cache_on.__name__
                )
                wanted.append(_key(params["column"], cache))
    todo = [k for k in dict.fromkeys(wanted) if _present(k[0])]
    base = tmp_path_factory.mktemp("conformance-pgbouncer")

    def run(key: tuple[str, str, bool]) -> Run:
        adapter, driver, cache = key
        workdir = base / f"{adapter}-{driver}{'-cache' if cache else ''}"
        if cache:
            url = _url(bouncer, driver, "?statement_cache=true")
            extra = ["--poolbridge-pgbouncer", "-k", CACHE_ON_ROWS]
        else:
            url, extra = _url(bouncer, driver), ["--poolbridge-pgbouncer"]
        return _run_column(adapter, "postgresql", workdir, url=url, extra=extra)

    with ThreadPoolExecutor(max_workers=JOBS) as pool:
        futures = {k: pool.submit(run, k) for k in todo}
        return {k: f.result() for k, f in futures.items()}


def _need(adapter: str) -> None:
    if not _present(adapter):
        msg = f"adapter {adapter} is not installed"
        if IN_CI:
            pytest.fail(f"{msg} (CI=true)")
        pytest.skip(msg)


@pytest.mark.parametrize("column", COLUMNS, ids=lambda c: f"{c[0]}[{c[1]}]")
def test_suite_passes_through_pgbouncer(
    column: tuple[str, str], runs: dict[tuple[str, str, bool], Run]
) -> None:
    _need(column[0])
    run = runs[_key(column, False)]
    _assert_passed(run)
    assert "postgresql via pgbouncer:" in run.matrix, run.matrix
    assert "closed" in run.matrix, "no row closed for pgbouncer: was it really in between?"


@pytest.mark.parametrize("column", CACHE_ON, ids=lambda c: f"{c[0]}[{c[1]}]")
def test_suite_fails_through_pgbouncer_with_cache_on(
    column: tuple[str, str], runs: dict[tuple[str, str, bool], Run]
) -> None:
    """The same suite without statement_cache=False: the prepared-statement failure."""
    _need(column[0])
    run = runs[_key(column, True)]
    print(run.matrix)
    assert run.returncode == 1, run.output[-3000:]
    assert "FAIL" in run.matrix, run.matrix
    assert "prepared statement" in run.output, run.output[-3000:]


def test_pgbouncer_left_no_connection(
    bouncer: PgBouncer, runs: dict[tuple[str, str, bool], Run]
) -> None:
    """After every run: no client of a suite role is left at pgbouncer (every pool closed
    its connections) and no server connection of one (the roles' backends are gone)."""

    async def leftovers() -> tuple[list[str], list[str]]:
        clients = [str(r["user"]) for r in await bouncer.show("CLIENTS")]
        servers = [str(r["user"]) for r in await bouncer.show("SERVERS")]
        return [u for u in clients if u.startswith("pb_")], [
            u for u in servers if u.startswith("pb_")
        ]

    async def settled() -> tuple[list[str], list[str]]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5.0
        while True:
            left = await leftovers()
            if not any(left) or loop.time() > deadline:
                return left
            await asyncio.sleep(0.1)

    if not runs:
        pytest.skip("no suite run selected (-k): nothing to check after")
    clients, servers = asyncio.run(settled())
    assert not clients, f"pool connections left at pgbouncer: {clients}"
    assert not servers, f"server connections of dropped roles left: {servers}"


def test_check_runs_postgresql_columns_through_pgbouncer(tmp_path: Path) -> None:
    """``poolbridge check --pgbouncer``: PostgreSQL columns get the plugin's pgbouncer flag,
    the others run as usual (the end-to-end run is the suite runs above: same plugin)."""
    from poolbridge.cli.check import _pytest_args, plan_columns

    urls = ["postgresql://u@127.0.0.1:6432/db", f"sqlite:///{tmp_path}/x.db"]
    columns = plan_columns(["asyncpg", "aiosqlite"], urls, pgbouncer=True)
    via = {(c.name, c.backend): c.via for c in columns}
    assert via == {
        ("asyncpg[asyncpg]", "postgresql"): "pgbouncer",
        ("aiosqlite[aiosqlite]", "sqlite"): "",
    }
    for c in columns:
        args = _pytest_args(c, faults=True, junit=tmp_path / "j.xml")
        assert ("--poolbridge-pgbouncer" in args) is (c.backend == "postgresql")
        assert c.target.via == c.via
    assert all(not c.via for c in plan_columns(["asyncpg"], urls[:1]))
