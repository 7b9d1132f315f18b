"""poolbridge.retry: which errors are connection-class, the backoff loop, and real servers
whose backend is killed between attempts."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

import poolbridge
from poolbridge import ConfigError, PoolConfig, PoolTimeout, open_pool
from poolbridge.adapters.registry import get_adapter
from poolbridge.pool.retrying import Retrying, is_connection_error

# -- classification, on the drivers' real exception classes ---------------------------------------


def _connection_errors() -> list[BaseException]:
    import asyncmy.errors
    import asyncpg.exceptions as pg
    import psycopg
    import pymysql.err
    import sqlalchemy.exc

    return [
        ConnectionResetError(),
        ConnectionRefusedError(),
        BrokenPipeError(),
        asyncio.IncompleteReadError(b"", 5),
        pg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        pg.AdminShutdownError("terminating connection due to administrator command"),
        pg.CannotConnectNowError("the database system is starting up"),
        pg.InterfaceError("cannot perform operation: connection is closed"),
        pg.InternalClientError("cannot switch to state 11; another operation (2) is in progress"),
        psycopg.OperationalError("consuming input failed: server closed the connection"),
        psycopg.errors.AdminShutdown("terminating connection"),
        pg.IdleSessionTimeoutError("terminating connection due to idle-session timeout"),
        psycopg.errors.IdleSessionTimeout("terminating connection due to idle-session timeout"),
        psycopg.errors.IdleInTransactionSessionTimeout("terminating connection due to idle-in-tx"),
        pymysql.err.OperationalError(2013, "Lost connection to server during query"),
        pymysql.err.OperationalError(2006, "MySQL server has gone away"),
        pymysql.err.OperationalError(1927, "Connection was killed"),
        pymysql.err.InterfaceError(0, ""),
        asyncmy.errors.OperationalError(2003, "Can't connect"),
        sqlalchemy.exc.DBAPIError(
            "SELECT 1", None, ConnectionResetError(), connection_invalidated=True
        ),
        _caused(PoolTimeout("no connection could be opened"), ConnectionRefusedError()),
    ]


def _other_errors() -> list[BaseException]:
    import asyncpg.exceptions as pg
    import psycopg
    import pymysql.err
    import sqlalchemy.exc

    return [
        ValueError("x"),
        TimeoutError(),
        PoolTimeout("exhausted"),
        pg.UniqueViolationError("duplicate key"),
        pg.QueryCanceledError("canceling statement due to statement timeout"),
        pg.InterfaceError("cannot perform operation: another operation is in progress"),
        psycopg.errors.QueryCanceled("statement timeout"),
        psycopg.errors.UniqueViolation("duplicate"),
        pymysql.err.OperationalError(1205, "Lock wait timeout exceeded"),
        pymysql.err.ProgrammingError(1064, "syntax error"),
        pymysql.err.IntegrityError(1062, "Duplicate entry"),
        sqlalchemy.exc.DBAPIError("SELECT 1", None, ValueError(), connection_invalidated=False),
        _context_only(ValueError("after"), ConnectionResetError()),
    ]


def _caused(exc: BaseException, cause: BaseException) -> BaseException:
    exc.__cause__ = cause
    return exc


def _context_only(exc: BaseException, context: BaseException) -> BaseException:
    exc.__context__ = context
    return exc


@pytest.mark.parametrize("exc", _connection_errors(), ids=lambda e: type(e).__name__)
def test_connection_errors_are_recognised(exc: BaseException) -> None:
    assert is_connection_error(exc)


@pytest.mark.parametrize("exc", _other_errors(), ids=lambda e: type(e).__name__)
def test_other_errors_are_not_retried(exc: BaseException) -> None:
    assert not is_connection_error(exc)


def _wrong_host_errors() -> list[BaseException]:
    """ "This server refuses writes", as each driver raises it (and wrapped)."""
    import asyncmy.errors
    import asyncpg.exceptions as pg
    import psycopg
    import pymysql.err
    import sqlalchemy.exc

    return [
        pg.ReadOnlySQLTransactionError("cannot execute INSERT in a read-only transaction"),
        psycopg.errors.ReadOnlySqlTransaction("cannot execute INSERT in a read-only transaction"),
        pymysql.err.OperationalError(1290, "The MariaDB server is running with --read-only"),
        pymysql.err.InternalError(1792, "Cannot execute statement in a READ ONLY transaction"),
        asyncmy.errors.OperationalError(1836, "Running in read-only mode"),
        sqlalchemy.exc.DBAPIError("INSERT", None, pg.ReadOnlySQLTransactionError("read-only")),
        _caused(RuntimeError("write failed"), pymysql.err.OperationalError(1290, "--read-only")),
    ]


@pytest.mark.parametrize("exc", _wrong_host_errors(), ids=lambda e: type(e).__name__)
def test_wrong_host_errors_count_for_read_write_operations_only(exc: BaseException) -> None:
    from poolbridge.pool.retrying import is_wrong_host_error

    assert is_wrong_host_error(exc)
    assert is_connection_error(exc, read_write=True)
    assert not is_connection_error(exc), "a write sent to a replica on purpose is no outage"


@pytest.mark.parametrize("exc", _other_errors(), ids=lambda e: type(e).__name__)
def test_other_errors_are_not_retried_for_read_write_operations_either(exc: BaseException) -> None:
    assert not is_connection_error(exc, read_write=True)


def test_the_drivers_share_the_read_only_codes() -> None:
    from poolbridge.drivers import hosts
    from poolbridge.pool import retrying

    assert hosts.read_only_error is retrying.is_read_only_error
    assert {1290, 1792, 1836} == retrying.MYSQL_READ_ONLY_CODES


@pytest.mark.asyncio
async def test_read_write_policy_retries_a_wrong_host_error() -> None:
    import pymysql.err

    demoted = pymysql.err.OperationalError(1290, "The MariaDB server is running with --read-only")
    flaky = Flaky(1, demoted)
    assert await poolbridge.retry(initial_backoff=0.01, read_write=True).call(flaky) == 2
    plain = Flaky(1, demoted)
    with pytest.raises(pymysql.err.OperationalError):
        await poolbridge.retry(initial_backoff=0.01).call(plain)
    assert plain.calls == 1


def test_read_write_with_a_predicate_is_refused() -> None:
    with pytest.raises(ConfigError, match="read_write=True"):
        poolbridge.retry(read_write=True, retry_on=lambda e: True)


# -- the loop --------------------------------------------------------------------------------


class Flaky:
    """Fails ``failures`` times with ``error``, then returns the number of calls."""

    def __init__(self, failures: int, error: BaseException) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    async def __call__(self) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return self.calls


@pytest.mark.asyncio
async def test_decorator_retries_connection_errors_then_succeeds() -> None:
    flaky = Flaky(2, ConnectionResetError("reset"))
    wrapped = poolbridge.retry(attempts=3, initial_backoff=0.01, jitter=0)(flaky)
    assert await wrapped() == 3
    assert flaky.calls == 3


@pytest.mark.asyncio
async def test_bare_decorator_uses_defaults() -> None:
    flaky = Flaky(1, ConnectionResetError())

    @poolbridge.retry
    async def op() -> int:
        return await flaky()

    assert await op() == 2
    assert op.__name__ == "op"


@pytest.mark.asyncio
async def test_other_errors_are_raised_at_once() -> None:
    flaky = Flaky(5, ValueError("bad input"))
    with pytest.raises(ValueError, match="bad input"):
        await poolbridge.retry(attempts=5, initial_backoff=0.01)(flaky)()
    assert flaky.calls == 1


@pytest.mark.asyncio
async def test_last_error_is_raised_when_attempts_run_out() -> None:
    flaky = Flaky(10, ConnectionRefusedError("refused"))
    policy = Retrying(attempts=3, initial_backoff=0.01, jitter=0)
    with pytest.raises(ConnectionRefusedError):
        await policy(flaky)()
    assert flaky.calls == 3
    assert policy.retries == 2


@pytest.mark.asyncio
async def test_backoff_is_capped_and_deadline_bounds_everything() -> None:
    flaky = Flaky(100, ConnectionResetError())
    policy = Retrying(attempts=100, initial_backoff=0.05, max_backoff=0.1, jitter=0, deadline=0.5)
    t0 = time.monotonic()
    with pytest.raises(ConnectionResetError):
        await policy.call(flaky)
    elapsed = time.monotonic() - t0
    assert elapsed < 0.5 + 0.5  # the deadline, with scheduling slack
    # capped at 0.1 s per sleep: about 0.5 / 0.1 attempts fit, far from 100
    assert 3 <= flaky.calls <= 8


@pytest.mark.asyncio
async def test_async_for_form() -> None:
    flaky = Flaky(2, ConnectionResetError())
    result = None
    async for attempt in poolbridge.retry(attempts=4, initial_backoff=0.01):
        async with attempt:
            result = await flaky()
    assert result == 3
    assert flaky.calls == 3


@pytest.mark.asyncio
async def test_custom_predicate() -> None:
    flaky = Flaky(1, TimeoutError())
    policy = poolbridge.retry(initial_backoff=0.01, retry_on=lambda e: isinstance(e, TimeoutError))
    assert await policy.call(flaky) == 2


def test_invalid_policy_reports_every_problem() -> None:
    with pytest.raises(ConfigError) as info:
        poolbridge.retry(attempts=0, jitter=2.0, deadline=-1)
    assert len(info.value.problems) == 3


def test_sync_functions_are_refused() -> None:
    with pytest.raises(TypeError):
        poolbridge.retry(lambda: 1)  # type: ignore[arg-type]


# -- real servers: the backend dies between attempts ----------------------------------------

CASES = [
    ("asyncpg", "postgresql", "SELECT pg_backend_pid()"),
    ("psycopg", "postgresql", "SELECT pg_backend_pid()"),
    ("sqlalchemy", "postgresql", "SELECT pg_backend_pid()"),
    ("aiomysql", "mysql", "SELECT CONNECTION_ID()"),
    ("asyncmy", "mysql", "SELECT CONNECTION_ID()"),
]


async def _kill(backend: str, url: str, server_id: int) -> None:
    if backend == "postgresql":
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval("SELECT pg_terminate_backend($1)", server_id)
        finally:
            await conn.close()
    else:
        import aiomysql

        conn = await aiomysql.connect(host="127.0.0.1", port=3306, user="root", db="test")
        try:
            async with conn.cursor() as cur:
                await cur.execute(f"KILL {int(server_id)}")
        finally:
            conn.close()


@pytest.mark.asyncio
@pytest.mark.server
@pytest.mark.parametrize(("adapter", "backend", "whoami"), CASES, ids=[c[0] for c in CASES])
async def test_retry_survives_a_killed_backend(
    adapter: str, backend: str, whoami: str, request: pytest.FixtureRequest
) -> None:
    url: str = request.getfixturevalue("pg_url" if backend == "postgresql" else "mysql_url")
    try:
        get_adapter(adapter).check_available()
    except poolbridge.AdapterNotAvailable as exc:
        pytest.skip(str(exc))
    impl = get_adapter(adapter)
    cfg = PoolConfig(
        url=url, min_size=1, max_size=2, acquire_timeout=5, name=f"pbretry_{uuid.uuid4().hex[:8]}"
    )
    seen: list[int] = []
    errors: list[str] = []
    async with open_pool(cfg, adapter=adapter) as pool:

        @poolbridge.retry(attempts=3, initial_backoff=0.05)
        async def idempotent() -> int:
            async with pool.acquire() as conn:
                me = int(await impl.fetch_scalar(conn, whoami))
                seen.append(me)
                if len(seen) == 1:  # first attempt: the backend dies under our feet
                    await _kill(backend, url, me)
                    await asyncio.sleep(0.2)
                try:
                    return int(await impl.fetch_scalar(conn, whoami))
                except Exception as exc:
                    errors.append(f"{type(exc).__module__}.{type(exc).__name__}")
                    raise

        result = await idempotent()
    assert len(seen) == 2, f"expected one retry, saw attempts on {seen} (errors {errors})"
    assert result == seen[1] != seen[0]
    assert len(errors) == 1
