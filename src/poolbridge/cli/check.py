"""``poolbridge check``: run the conformance suite for every adapter and print the matrix.

    poolbridge check                                   # embedded PostgreSQL (+ SQLite), faults on
    poolbridge check postgresql://root@127.0.0.1/test mysql://root@127.0.0.1/test
    poolbridge check --adapter sqlalchemy --adapter psycopg --json out.json --junit out.xml
    poolbridge check --adapter tortoise --requirement 'parity_*'   # only the stock-parity rows
    poolbridge check --pgbouncer postgresql://root@127.0.0.1:6432/test  # through pgbouncer
    poolbridge check --pgbouncer                       # embedded PostgreSQL behind our pgbouncer

Each matrix column (adapter x driver x server) runs the installed suite
(``pytest -p poolbridge.testing``) in a pytest subprocess of its own, in an empty temporary
directory, and the columns run concurrently: they share no state but the server (the suite
gives every test its own role, tables and pool names, and kills backends only by the pids
its own pools recorded). With no URL, an embedded PostgreSQL (``poolbridge[embedded]``) is
started in a temporary directory — poolbridge owns it, so the fault rows run by default —
together with one SQLite file per column, and everything is removed at the end.

The high-availability rows run on a primary + standby pair of the suite's own, never on
the URLs' servers: the reading rows of every column share one pair per backend, started
here before the columns (an embedded PostgreSQL pair; a MariaDB pair from the system
``mariadbd``) and handed to them with ``poolbridge_ha_dburl``; the ``failover`` fault row
starts a fresh pair per column.

With ``--pgbouncer`` the PostgreSQL URLs are pgbouncers in transaction pool mode: the suite
runs its pools through them with ``statement_cache=False`` and counts their connections with
pgbouncer's SHOW CLIENTS/SERVERS
(:class:`poolbridge.testing.servers.pgbouncer.PgBouncerAdmin`); rows that cannot apply through
pgbouncer are closed with the reason. With no URL, a pgbouncer of poolbridge's own
(transaction pooling) is started in front of the embedded PostgreSQL.

Exit code: 0 only if every open requirement passed (closed rows, a missing extra, and fault
rows not asked for do not count; a server that could not be reached does).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from poolbridge.cli import arg, subcommand

if TYPE_CHECKING:  # the report module imports pytest: keep ``poolbridge --help`` light
    from poolbridge.cli.check_report import Column, ColumnResult

__all__ = ["check", "plan_columns"]

#: concurrent pytest processes against servers the user owns (connections are limited there)
DEFAULT_JOBS_EXTERNAL = 4
#: server settings of the embedded PostgreSQL: every column at once needs ~15 connections each
EMBEDDED_SETTINGS = {"max_connections": "400"}
#: settings of the pgbouncer started for ``--pgbouncer`` without URL: a pool size of at least
#: the suite's largest max_size (a stack that keeps a transaction open while checked out
#: holds a server connection as long); round robin, so that consecutive transactions of one
#: client meet different server connections
OWN_PGBOUNCER_POOL_SIZE = 5
OWN_PGBOUNCER_SETTINGS = {"server_round_robin": "1"}


def _split(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for v in values or []:
        out.extend(p for p in v.replace(",", " ").split() if p)
    return out


def _config_urls(path: str) -> list[str]:
    """The URL of every pool in a poolbridge.toml (default + ``[pools.<name>]``)."""
    from poolbridge.config.loaders import find_config_file, load

    found = find_config_file(path)
    assert found is not None  # an explicit path either exists or raised ConfigError
    file_path, doc = found
    names = ["default"] if "url" in doc else []
    names += list(doc.get("pools", {}) or {})
    urls: list[str] = []
    for name in names:
        url = load(name, path=file_path, environ={}).url
        if url not in urls:
            urls.append(url)
    return urls


def _with_driver(url: str, driver: str) -> str:
    """``url`` with ``+driver`` in its scheme (the suite then runs that driver only)."""
    scheme, rest = url.split("://", 1)
    return f"{scheme.split('+', 1)[0]}+{driver}://{rest}"


def plan_columns(adapters: list[str], urls: list[str], *, pgbouncer: bool = False) -> list[Column]:
    """One column per adapter x URL x driver; missing extras become 'not installed' columns.
    With ``pgbouncer`` the PostgreSQL URLs are pgbouncers (their columns run through them)."""
    from poolbridge.adapters.registry import adapter_names, get_adapter
    from poolbridge.cli.check_report import Column
    from poolbridge.config.model import PoolConfig
    from poolbridge.errors import AdapterNotAvailable

    names: list[str] = []
    for name in adapters:
        for n in adapter_names() if name == "all" else [name]:
            if n not in names:
                names.append(n)
    columns: list[Column] = []
    for name in names:
        adapter = get_adapter(name)  # AdapterNotAvailable (exit 1) for an unknown name
        for url in urls:
            backend = PoolConfig(url=url).backend
            wanted = PoolConfig(url=url).database_url.driver
            for driver in adapter.drivers.get(backend, ()):
                if wanted is not None and driver != wanted:
                    continue
                target_url = _with_driver(url, driver)
                missing = None
                try:
                    adapter.check_available(PoolConfig(url=target_url))
                except AdapterNotAvailable as exc:
                    missing = str(exc)
                via = "pgbouncer" if pgbouncer and backend == "postgresql" else ""
                columns.append(Column(name, driver, backend, target_url, missing, via))
    return columns


def _ha_backends(columns: list[Column], rows: tuple[str, ...]) -> list[str]:
    """Backends whose columns run a reading high-availability row (they share one pair)."""
    from poolbridge.adapters.registry import get_adapter
    from poolbridge.testing.requirements import HA_ROWS, closed_reason, selected

    reading = [r.name for r in HA_ROWS if not r.fault and selected(r.name, rows)]
    out: list[str] = []
    for c in columns:
        if c.missing is not None or c.backend in out:
            continue
        adapter = get_adapter(c.adapter)
        if any(closed_reason(adapter, c.backend, c.driver, r, via=c.via) is None for r in reading):
            out.append(c.backend)
    return out


@contextlib.contextmanager
def _ha_pairs(columns: list[Column], rows: tuple[str, ...]) -> Iterator[list[str]]:
    """Start the shared pairs of the high-availability rows; yields their multi-host URLs.
    A pair that cannot start is reported, and the rows of its backend say so themselves."""
    from poolbridge.testing.ha import PairSource, PairUnavailable

    backends = _ha_backends(columns, rows)
    source = PairSource()
    try:
        if backends:
            print(f"starting a replicated pair for the high-availability rows: "
                  f"{', '.join(backends)} ...", flush=True)  # fmt: skip
        started = time.monotonic()
        urls: list[str] = []
        for backend, found in source.start(backends).items():
            if isinstance(found, PairUnavailable):
                print(f"high-availability rows on {backend}: {found}", flush=True)
            else:
                urls.append(found.dburl)
        if urls:
            print(f"replicated pairs ready ({time.monotonic() - started:.1f} s)", flush=True)
        yield urls
    finally:
        source.close()


def _pytest_args(
    column: Column, faults: bool, junit: Path, rows: tuple[str, ...] = ()
) -> list[str]:
    args = [
        sys.executable, "-m", "pytest",
        "-p", "poolbridge.testing", "-p", "poolbridge.cli.check_collect",
        "-p", "no:cacheprovider",
        f"--poolbridge-adapter={column.adapter}",
        "-q", "--no-header", "-rN", "-o", "addopts=", "-o", "console_output_style=classic",
        f"--junitxml={junit}", "-o", f"junit_suite_name=poolbridge.{column.name}",
    ]  # fmt: skip
    if faults:
        args.append("--poolbridge-faults")
    if column.via == "pgbouncer":
        args.append("--poolbridge-pgbouncer")
    args.extend(f"--poolbridge-requirement={pattern}" for pattern in rows)
    return args


async def _run_column(
    column: Column,
    faults: bool,
    workdir: Path,
    limit: asyncio.Semaphore,
    rows: tuple[str, ...] = (),
    ha_dburls: tuple[str, ...] = (),
) -> ColumnResult:
    from poolbridge.cli.check_collect import RESULTS_ENV
    from poolbridge.cli.check_report import ColumnResult

    async with limit:
        slug = column.name.replace("[", "-").replace("]", "") + f"-{column.backend}"
        cwd = workdir / slug
        cwd.mkdir()
        # the URL may carry a password: hand it over in an owner-only ini file in the
        # column's own directory, never on the command line (visible in ps / /proc)
        ini = cwd / "pytest.ini"
        ini.touch(mode=0o600)
        text = f"[pytest]\npoolbridge_dburl =\n    {column.url}\n"
        if ha_dburls:
            text += "poolbridge_ha_dburl =\n" + "".join(f"    {u}\n" for u in ha_dburls)
        ini.write_text(text, encoding="utf-8")
        results, junit = cwd / "results.json", cwd / "junit.xml"
        env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS",)}
        env[RESULTS_ENV] = str(results)
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            *_pytest_args(column, faults, junit, rows),
            cwd=cwd,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await proc.communicate()
        return ColumnResult.load(
            column,
            returncode=proc.returncode if proc.returncode is not None else -1,
            output=output.decode(errors="replace"),
            results=results,
            junit=junit,
            seconds=time.monotonic() - started,
        )


async def _run_all(
    columns: list[Column],
    faults: bool,
    workdir: Path,
    jobs: int,
    rows: tuple[str, ...] = (),
    ha_dburls: tuple[str, ...] = (),
) -> list[ColumnResult]:
    from poolbridge.cli.check_report import ColumnResult, summary_line

    limit = asyncio.Semaphore(max(1, jobs))
    runnable = [c for c in columns if c.missing is None]
    done: dict[Column, ColumnResult] = {}
    tasks = [
        asyncio.create_task(_run_column(c, faults, workdir, limit, rows, ha_dburls))
        for c in runnable
    ]
    total = len(tasks)
    for n, finished in enumerate(asyncio.as_completed(tasks), start=1):
        result = await finished
        done[result.column] = result
        print(f"[{n:>2}/{total}] {summary_line(result)}", flush=True)
    return [done[c] if c in done else ColumnResult.not_installed(c) for c in columns]


@contextlib.contextmanager
def _servers(
    urls: list[str], workdir: Path, pgbouncer: bool = False
) -> Iterator[tuple[list[str], bool]]:
    """The URLs to test, starting an embedded PostgreSQL (+ a SQLite file) when none given;
    with ``pgbouncer``, the embedded PostgreSQL behind a pgbouncer of our own instead."""
    if urls:
        yield urls, False
        return
    from poolbridge.testing.servers.embedded import EmbeddedPostgres

    print("starting an embedded PostgreSQL in a temporary directory ...", flush=True)
    started = time.monotonic()
    with EmbeddedPostgres(settings=EMBEDDED_SETTINGS) as pg:
        print(f"embedded PostgreSQL ready at {pg.url} ({time.monotonic() - started:.1f} s)")
        if not pgbouncer:
            yield [pg.url, f"sqlite:///{workdir / 'check.sqlite3'}"], True
            return
        from poolbridge.testing.servers.pgbouncer import PgBouncer

        bouncer = PgBouncer(
            upstream_port=pg.port,
            users=(pg.user,),
            default_pool_size=OWN_PGBOUNCER_POOL_SIZE,
            extra=OWN_PGBOUNCER_SETTINGS,
        )
        with bouncer:
            print(f"pgbouncer (transaction pooling) in front of it at {bouncer.url_for(pg.url)}")
            yield [bouncer.url_for(pg.url)], True


def _sqlite_per_column(columns: list[Column]) -> None:
    """Give each SQLite column its own database file (columns run concurrently)."""
    for c in columns:
        if c.backend == "sqlite" and "check.sqlite3" in c.url:
            c.url = c.url.replace("check.sqlite3", f"check-{c.adapter}-{c.driver}.sqlite3")


@subcommand(
    "check",
    help="run the conformance suite for every adapter and print the pass/fail matrix",
    args=[
        arg(
            "urls",
            nargs="*",
            metavar="URL",
            help="database URLs of a privileged user (default: an embedded PostgreSQL "
            "and a SQLite file in a temporary directory)",
        ),
        arg(
            "--adapter",
            action="append",
            metavar="NAME",
            help="adapter to check (repeatable or comma-separated; default: all)",
        ),
        arg("--config", metavar="FILE", help="also check the URL of every pool in this file"),
        arg("--json", metavar="FILE", help="write the results as JSON"),
        arg("--junit", metavar="FILE", help="write the results as JUnit XML"),
        arg(
            "--faults",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="run the fault rows, which kill server connections (default: on for the "
            "embedded server only)",
        ),
        arg(
            "--pgbouncer",
            action="store_true",
            help="the PostgreSQL URLs are pgbouncers in transaction pool mode: run the suite "
            "through them with statement_cache=False (their user must be in pgbouncer's "
            "stats_users, and the suite's per-test roles must be let in, e.g. by auth_query); "
            "without URL: the embedded PostgreSQL behind a pgbouncer of poolbridge's own",
        ),
        arg(
            "--requirement",
            action="append",
            metavar="PATTERN",
            help="run only the rows whose name matches (glob, repeatable or comma-separated; "
            "e.g. 'parity_*' for the stock-parity rows; '!failover' runs every row but that)",
        ),
        arg(
            "--jobs",
            type=int,
            help="pytest processes at once (default: all for the embedded server, "
            f"{DEFAULT_JOBS_EXTERNAL} for your servers)",
        ),
    ],
)
def check(ns: argparse.Namespace) -> int:
    """Run the conformance suite per adapter x driver x server, concurrently; print the matrix."""
    from poolbridge.cli.check_report import exit_problems, render_tables, write_json, write_junit

    adapters = _split(ns.adapter) or ["all"]
    urls = list(ns.urls)
    if ns.config:
        urls += [u for u in _config_urls(ns.config) if u not in urls]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="poolbridge-check-") as tmp:
        workdir = Path(tmp)
        with _servers(urls, workdir, ns.pgbouncer) as (targets, embedded):
            faults = ns.faults if ns.faults is not None else embedded
            columns = plan_columns(adapters, targets, pgbouncer=ns.pgbouncer)
            _sqlite_per_column(columns)
            if not columns:
                print("poolbridge check: no adapter serves these URLs", file=sys.stderr)
                return 2
            runnable = sum(1 for c in columns if c.missing is None)
            jobs = ns.jobs or (runnable if embedded else DEFAULT_JOBS_EXTERNAL)
            print(
                f"running the conformance suite: {runnable} column(s), {jobs} at a time"
                + (", fault rows on" if faults else ", fault rows off (--faults to add them)"),
                flush=True,
            )
            rows = tuple(_split(ns.requirement))
            with _ha_pairs(columns, rows) as ha_dburls:
                results = asyncio.run(
                    _run_all(columns, faults, workdir, jobs, rows, tuple(ha_dburls))
                )
        elapsed = time.monotonic() - started
        for line in render_tables(results, faults=faults):
            print(line)
        if ns.json:
            write_json(Path(ns.json), results, faults=faults, seconds=elapsed, rows=rows)
        if ns.junit:
            write_junit(Path(ns.junit), results)
    problems = exit_problems(results, explicit_adapters=adapters != ["all"], rows=rows)
    print()
    if problems:
        for p in problems:
            print(f"NOT OK: {p}")
        print(f"poolbridge check: {len(problems)} problem(s) in {elapsed:.1f} s")
        return 1
    print(f"poolbridge check: every open requirement passed ({elapsed:.1f} s)")
    return 0
