"""``poolbridge.retry(read_write=True)`` on real servers: a write that meets a read-only
session (what a demoted primary is to its old connections) fails with SQLSTATE 25006 /
MariaDB 1792; for a read-write pool the engine drops that connection, and the retry runs
the operation again on a fresh one. Without ``read_write`` the error is raised at once.

The session is made read-only by the test itself (``SET default_transaction_read_only`` /
``SET SESSION TRANSACTION READ ONLY``): the system servers are only read from and get one
table of the test's own, dropped afterwards. MariaDB 1290 (``--read-only``, a real
switchover) is in tests/ha/test_mysql_pair.py, on a pair of the test's own."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

import poolbridge
from poolbridge import PoolConfig, open_pool
from poolbridge.drivers.base import raw_scalar
from poolbridge.pool.retrying import is_connection_error, is_wrong_host_error

pytestmark = [pytest.mark.server]

#: backend -> (adapters, SQL that makes the session refuse writes)
CASES = [
    ("asyncpg", "postgresql", "SET default_transaction_read_only = on"),
    ("aiopg", "postgresql", "SET default_transaction_read_only = on"),
    ("aiomysql", "mysql", "SET SESSION TRANSACTION READ ONLY"),
    ("asyncmy", "mysql", "SET SESSION TRANSACTION READ ONLY"),
]
_ID = {"postgresql": "SELECT pg_backend_pid()", "mysql": "SELECT CONNECTION_ID()"}


async def _execute(conn: Any, sql: str) -> None:
    """Run a statement without a result, committed (asyncpg, aiopg, aiomysql, asyncmy)."""
    if type(conn).__module__.startswith("asyncpg"):
        await conn.execute(sql)
        return
    async with conn.cursor() as cur:
        await cur.execute(sql)
    if hasattr(conn, "get_autocommit") and not conn.get_autocommit():
        await conn.commit()


@contextlib.asynccontextmanager
async def _table(url: str, adapter: str) -> AsyncIterator[str]:
    """A table of the test's own on the system server, dropped afterwards."""
    name = f"ha_retry_{uuid.uuid4().hex[:8]}"
    config = PoolConfig(url=url, min_size=1, max_size=1)
    async with open_pool(config, adapter=adapter) as pool, pool.acquire() as conn:
        await _execute(conn, f"CREATE TABLE {name} (id integer)")
        try:
            yield name
        finally:
            await _execute(conn, f"DROP TABLE IF EXISTS {name}")


@pytest.mark.asyncio
@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
async def test_read_write_retry_reruns_a_write_that_met_a_read_only_session(
    case: tuple[str, str, str], request: pytest.FixtureRequest
) -> None:
    adapter, backend, read_only = case
    url = request.getfixturevalue("pg_url" if backend == "postgresql" else "mysql_url")
    async with _table(url, adapter) as name:
        await _scenario(url, adapter, backend, read_only, name)


async def _scenario(url: str, adapter: str, backend: str, read_only: str, name: str) -> None:
    config = PoolConfig(
        url=url, target_session_attrs="read-write", min_size=1, max_size=1, acquire_timeout=5
    )
    async with open_pool(config, adapter=adapter) as pool:
        async with pool.acquire() as conn:  # the one connection turns read-only
            demoted = await raw_scalar(conn, _ID[backend])
            await _execute(conn, read_only)
        seen: list[Any] = []
        errors: list[BaseException] = []

        async def write() -> None:
            async with pool.acquire() as conn:
                seen.append(await raw_scalar(conn, _ID[backend]))
                try:
                    await _execute(conn, f"INSERT INTO {name} (id) VALUES (1)")
                except Exception as exc:
                    errors.append(exc)
                    raise

        # without read_write the "wrong host" error is raised at once ...
        with pytest.raises(Exception) as info:
            await poolbridge.retry(initial_backoff=0.01)(write)()
        assert is_wrong_host_error(info.value), repr(info.value)
        assert not is_connection_error(info.value)
        assert seen == [demoted]
        # ... and the read-write pool dropped that connection: the next write succeeds on
        # a fresh one. Make the new connection read-only too, so the retry has work to do.
        async with pool.acquire() as conn:
            again = await raw_scalar(conn, _ID[backend])
            assert again != demoted, "the read-only connection was handed out again"
            await _execute(conn, read_only)
        seen.clear()
        errors.clear()
        policy = poolbridge.retry(attempts=3, initial_backoff=0.01, read_write=True)
        await policy(write)()
        assert policy.retries == 1
        assert seen[0] == again and seen[1] not in (again, demoted), seen
        assert len(errors) == 1 and is_connection_error(errors[0], read_write=True)
    plain = PoolConfig(url=url, min_size=1, max_size=1)
    async with open_pool(plain, adapter=adapter) as check, check.acquire() as conn:
        assert int(await raw_scalar(conn, f"SELECT count(*) FROM {name}")) == 1
