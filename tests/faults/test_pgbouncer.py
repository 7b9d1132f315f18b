"""pgbouncer in transaction mode: ``statement_cache=False`` makes every PostgreSQL stack
safe behind it; without the setting the same workload fails with the prepared-statement
error (pgbouncer 1.18, or max_prepared_statements pinned to 0 on newer versions).

The workload provokes the failure deliberately: more client connections than pgbouncer
server connections, several statement texts, each run many times in its own transaction, so
that a statement prepared on one server connection is executed on another.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest

from poolbridge.testing.servers.pgbouncer import PgBouncer, pgbouncer_binary

from ._harness import Probe, Stack, stacks

pytestmark = [pytest.mark.asyncio, pytest.mark.server, pytest.mark.timeout(30)]

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_STACKS = stacks("postgresql")
#: drivers that prepare statements by default (aiopg/psycopg2 never does); peewee-async
#: runs psycopg through client-side-binding cursors, which never prepare either
PREPARING_DRIVERS = ("asyncpg", "psycopg")
NEVER_PREPARES = ("peewee_async",)
SERVER_POOL = 2


@pytest.fixture(scope="module")
def bouncer() -> Iterator[PgBouncer]:
    if pgbouncer_binary() is None:
        msg = "pgbouncer is not installed (make pgbouncer)"
        if IN_CI:
            pytest.fail(msg + " (CI=true)")
        pytest.skip(msg)
    # round robin: consecutive transactions of one client go to different server
    # connections even when the machine is too loaded for the tasks to overlap (pgbouncer
    # reuses the last released server connection by default, which can hide the failure)
    with PgBouncer(
        upstream_port=5432,
        default_pool_size=SERVER_POOL,
        extra={"server_round_robin": "1"},
    ) as b:
        yield b


async def _add(probe: Probe, a: int, b: int) -> int:
    """``a + b`` on the server (a distinct statement text per ``a``), with bound parameters
    where the driver prepares only parametrised statements (psycopg sends parameterless SQL
    by the simple protocol)."""
    stack = probe.stack
    async with probe.pool.acquire() as conn:
        if stack.adapter == "psycopg":
            cur = await conn.execute(f"SELECT {a} + %s::int", (b,))
            row = await cur.fetchone()
            # commit, not rollback: psycopg forgets its prepared statements on ROLLBACK
            await conn.commit()
            return int(row[0])
        if stack.adapter == "sqlalchemy" and stack.driver == "psycopg":
            result = await conn.exec_driver_sql(f"SELECT {a} + %(b)s::int", {"b": b})
            value = int(result.scalar())
            await conn.commit()
            return value
        return int(await probe.impl.fetch_scalar(conn, f"SELECT {a} + {b}"))


async def _workload(probe: Probe, tasks: int = 6, rounds: int = 40) -> list[BaseException]:
    async def worker(i: int) -> list[BaseException]:
        errors: list[BaseException] = []
        for j in range(rounds):
            try:
                value = await _add(probe, j % 4, i % 2)
            except Exception as exc:
                errors.append(exc)
                continue
            if value != j % 4 + i % 2:  # a statement prepared by another client ran
                errors.append(WrongResult(f"prepared statement mix-up: {value} != {j % 4 + i % 2}"))
        return errors

    results = await asyncio.gather(*(worker(i) for i in range(tasks)))
    return [e for errs in results for e in errs]


class WrongResult(Exception):
    """A query returned another statement's result (a prepared statement name collision)."""


def _is_prepared_statement_error(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if "prepared statement" in str(seen).lower():
            return True
        seen = seen.__cause__ or getattr(seen, "orig", None)
    return False


def _opts(statement_cache: bool) -> dict[str, object]:
    return {"statement_cache": statement_cache, "min_size": 1, "max_size": 6}


@pytest.mark.parametrize("stack", PG_STACKS)
async def test_statement_cache_off_is_safe(stack: Stack, bouncer: PgBouncer, pg_url: str) -> None:
    async with Probe(stack, bouncer.url_for(pg_url), _opts(False)) as probe:
        errors = await _workload(probe)
        assert not errors, f"{stack.id} behind pgbouncer failed: {errors[:3]!r}"
        clients = await bouncer.client_count(database="test")
        servers = await bouncer.server_count(database="test")
        held = probe.held()
        assert 1 <= held <= probe.cfg.max_size
        # pgbouncer sees the pool's connections as its clients (other tests' may be there
        # too: this module's tests run one at a time, so at least ours)
        assert clients >= held
        assert servers <= SERVER_POOL


@pytest.mark.parametrize(
    "stack",
    [
        p
        for p in PG_STACKS
        if p.values[0].driver in PREPARING_DRIVERS and p.values[0].adapter not in NEVER_PREPARES
    ],
)
async def test_statement_cache_on_fails(stack: Stack, bouncer: PgBouncer, pg_url: str) -> None:
    """Without statement_cache=False the same workload hits the prepared-statement failure:
    proof that the test above exercises what it claims to."""
    async with Probe(stack, bouncer.url_for(pg_url), _opts(True)) as probe:
        errors = await _workload(probe)
        assert any(_is_prepared_statement_error(e) for e in errors), (
            f"{stack.id}: no prepared-statement failure behind pgbouncer with the statement "
            f"cache on (errors: {errors[:3]!r})"
        )
