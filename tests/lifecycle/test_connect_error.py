"""A server that cannot be reached, or that rejects the login, is one ConnectError at open on
every adapter x driver x backend: the driver's error chained, ``host:port`` named, the
password nowhere, and a rejected login tried once (not ``retry.attempts`` times).

Login attempts are counted on the wire: the pool connects through a :class:`TcpProxy`
that counts the TCP connections it accepts, whatever the driver or the ORM on top does.
The wrong password meets a real password check: an embedded PostgreSQL whose ``pg_hba``
asks for scram-sha-256, and a MariaDB user created with a password (dropped afterwards).
"""

from __future__ import annotations

import asyncio
import socket
import traceback
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from poolbridge import ConnectError, PoolBridgeError, PoolConfig, RetryPolicy, open_pool
from poolbridge.drivers.connect_errors import error_chain
from poolbridge.testing.servers.embedded import free_port
from poolbridge.testing.servers.proxy import TcpProxy

from ._stacks import STACKS, Stack

SERVER_STACKS = [pytest.param(s, id=s.id) for s in STACKS if s.backend != "sqlite"]

#: the modules an error of each driver comes from (the chained cause must be one of them,
#: or a builtin OSError the driver let through)
DRIVER_MODULES = {
    "asyncpg": ("asyncpg",),
    "aiopg": ("psycopg2",),
    "psycopg": ("psycopg",),
    "aiomysql": ("pymysql", "aiomysql"),
    "asyncmy": ("asyncmy",),
}

ATTEMPTS = 2  # psycopg_pool waits ~1 s before its second attempt


def _secret() -> str:
    return f"S3cr3t-{uuid.uuid4().hex[:12]}"


def _config(stack: Stack, url: str, **fields: object) -> PoolConfig:
    return PoolConfig(
        url=url,
        driver=stack.driver,
        min_size=1,
        max_size=2,
        acquire_timeout=8.0,
        connect_timeout=3.0,
        retry=RetryPolicy(attempts=ATTEMPTS, initial_backoff=0.01, max_backoff=0.05),
        name=f"pb-ce-{uuid.uuid4().hex[:8]}",
        **fields,  # type: ignore[arg-type]
    )


def _check_error(err: BaseException, stack: Stack, where: str, secret: str) -> ConnectError:
    assert isinstance(err, ConnectError), f"{type(err).__name__}: {err}"
    assert isinstance(err, PoolBridgeError)
    assert where in str(err), str(err)
    chain = list(error_chain(err))[1:]
    assert chain, "the driver's error is not chained"
    assert err.__cause__ is chain[0]
    roots = {type(e).__module__.partition(".")[0] for e in chain}
    from_driver = roots & set(DRIVER_MODULES[stack.driver])
    assert from_driver or any(isinstance(e, OSError) for e in chain), [type(e) for e in chain]
    # stock parity: what the stack's own open raises still catches it
    if stack.adapter == "tortoise":
        from tortoise.exceptions import DBConnectionError

        assert isinstance(err, DBConnectionError)
    if stack.adapter in ("psycopg", "peewee_async") and stack.driver == "psycopg":
        import psycopg_pool

        assert isinstance(err, psycopg_pool.PoolTimeout)
    shown = str(err) + repr(err) + "".join(traceback.format_exception(err))
    assert secret not in shown
    return err


@pytest.mark.asyncio
@pytest.mark.parametrize("stack", SERVER_STACKS)
async def test_refused_port_is_one_connect_error(stack: Stack) -> None:
    port = free_port()
    secret = _secret()
    scheme = "mysql" if stack.backend == "mysql" else "postgresql"
    cfg = _config(stack, f"{scheme}://root:{secret}@127.0.0.1:{port}/test")
    with pytest.raises(Exception) as info:
        pool = await asyncio.wait_for(open_pool(cfg, adapter=stack.adapter), 30)
        await pool.close(0)
    err = _check_error(info.value, stack, f"127.0.0.1:{port}", secret)
    assert err.retryable
    assert err.port == port and err.host == "127.0.0.1"
    # a refused connection is worth retrying: retry.attempts of them were made
    assert err.attempts == ATTEMPTS


# -- authentication failure --------------------------------------------------------------


@pytest.fixture(scope="module")
def scram_pg() -> Iterator[tuple[int, str, str]]:
    """An embedded PostgreSQL asking every role but ``postgres`` for a scram-sha-256
    password: (port, role, its password)."""
    psycopg = pytest.importorskip("psycopg")
    embedded = pytest.importorskip("poolbridge.testing.servers.embedded")
    role, password = "pb_scram", _secret()
    with embedded.EmbeddedPostgres() as pg:
        with psycopg.connect(host="127.0.0.1", port=pg.port, user="postgres", autocommit=True) as c:
            c.execute("SET password_encryption = 'scram-sha-256'")
            c.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
            (pg.pgdata / "pg_hba.conf").write_text(
                "local all all trust\n"
                "host all postgres 127.0.0.1/32 trust\n"
                "host all all 127.0.0.1/32 scram-sha-256\n"
            )
            c.execute("SELECT pg_reload_conf()")
        yield pg.port, role, password


@pytest.fixture
def mysql_user(mysql_url: str) -> Iterator[tuple[str, str]]:
    """A MariaDB user with a password (user, password), dropped afterwards."""
    pymysql = pytest.importorskip("pymysql")
    user, password = f"pb_ce_{uuid.uuid4().hex[:8]}", _secret()
    admin = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)
    try:
        with admin.cursor() as cur:
            for host in ("%", "localhost"):
                cur.execute(f"CREATE USER '{user}'@'{host}' IDENTIFIED BY '{password}'")
                cur.execute(f"GRANT ALL ON test.* TO '{user}'@'{host}'")
        yield user, password
    finally:
        with admin.cursor() as cur:
            for host in ("%", "localhost"):
                cur.execute(f"DROP USER IF EXISTS '{user}'@'{host}'")
        admin.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("stack", SERVER_STACKS)
async def test_wrong_password_is_one_connect_error_tried_once(
    stack: Stack, request: pytest.FixtureRequest
) -> None:
    if stack.backend == "mysql":
        user, right = request.getfixturevalue("mysql_user")
        target, database = 3306, "test"
    else:
        target, user, right = request.getfixturevalue("scram_pg")
        database = "postgres"
    wrong = _secret()
    scheme = "mysql" if stack.backend == "mysql" else "postgresql"
    async with TcpProxy("127.0.0.1", target) as proxy:
        # the right password opens (the proxy and the user work), counted on the wire
        good = _config(stack, f"{scheme}://{user}:{right}@127.0.0.1:{proxy.port}/{database}")
        pool = await asyncio.wait_for(open_pool(good, adapter=stack.adapter), 30)
        await pool.close(0)
        assert proxy.total_connections >= 1
        before = proxy.total_connections
        cfg = _config(stack, f"{scheme}://{user}:{wrong}@127.0.0.1:{proxy.port}/{database}")
        with pytest.raises(Exception) as info:
            pool = await asyncio.wait_for(open_pool(cfg, adapter=stack.adapter), 30)
            await pool.close(0)
        attempts_on_the_wire = proxy.total_connections - before
    err = _check_error(info.value, stack, f"127.0.0.1:{proxy.port}", wrong)
    assert right not in str(err)
    assert not err.retryable
    assert err.attempts == 1
    # the server saw one login, not retry.attempts of them
    assert attempts_on_the_wire == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("stack", SERVER_STACKS)
async def test_unknown_database_is_not_retried(
    stack: Stack, request: pytest.FixtureRequest
) -> None:
    base: str = request.getfixturevalue("mysql_url" if stack.backend == "mysql" else "pg_url")
    missing = f"pb_missing_{uuid.uuid4().hex[:8]}"
    port = 3306 if stack.backend == "mysql" else 5432
    async with TcpProxy("127.0.0.1", port) as proxy:
        url = proxy.url_for(base.rsplit("/", 1)[0] + f"/{missing}")
        with pytest.raises(Exception) as info:
            pool = await asyncio.wait_for(open_pool(_config(stack, url), adapter=stack.adapter), 30)
            await pool.close(0)
        assert proxy.total_connections == 1
    err = _check_error(info.value, stack, f"127.0.0.1:{proxy.port}", "no-secret-in-this-url")
    assert missing in str(err)
    assert not err.retryable and err.attempts == 1


# -- the per-driver rules ----------------------------------------------------------------


def _rule_cases() -> list[Any]:
    import asyncpg.exceptions as pg
    import psycopg
    import psycopg2  # type: ignore[import-untyped]
    import pymysql.err

    class Wrapper(Exception):  # SQLAlchemy's DBAPIError keeps the driver's error in .orig
        def __init__(self, orig: BaseException) -> None:
            super().__init__(str(orig))
            self.orig = orig

    fatal = 'connection to server at "127.0.0.1", port 5432 failed: FATAL:  '
    cases: list[tuple[str, BaseException, bool]] = [
        ("refused", ConnectionRefusedError(111, "refused"), False),
        ("timeout", TimeoutError(), False),
        ("dns", socket.gaierror(-2, "Name or service not known"), False),
        ("psycopg dns", psycopg.OperationalError("failed to resolve host 'db.invalid'"), False),
        ("unknown keyword", TypeError("connect() got an unexpected keyword argument"), True),
        ("asyncpg password", pg.InvalidPasswordError("password authentication failed"), True),
        ("asyncpg no database", pg.InvalidCatalogNameError('database "x" does not exist'), True),
        ("asyncpg bad setting", pg.UndefinedObjectError("unrecognized configuration"), True),
        (
            "asyncpg starting up",
            pg.CannotConnectNowError("the database system is starting up"),
            False,
        ),
        ("asyncpg too many", pg.TooManyConnectionsError("sorry, too many clients already"), False),
        (
            "psycopg password",
            psycopg.OperationalError(fatal + "password authentication failed"),
            True,
        ),
        (
            "psycopg no database",
            psycopg.OperationalError(fatal + 'database "x" does not exist'),
            True,
        ),
        (
            "psycopg starting up",
            psycopg.OperationalError(fatal + "the database system is starting up"),
            False,
        ),
        (
            "psycopg too many",
            psycopg.OperationalError(fatal + "sorry, too many clients already"),
            False,
        ),
        ("psycopg refused", psycopg.OperationalError("port 1 failed: Connection refused"), False),
        ("psycopg bad option", psycopg.ProgrammingError('invalid connection option "x"'), True),
        (
            "psycopg2 password",
            psycopg2.OperationalError("FATAL:  password authentication failed"),
            True,
        ),
        (
            "psycopg2 shutting down",
            psycopg2.OperationalError("FATAL:  the database system is shutting down"),
            False,
        ),
        ("mysql access denied", pymysql.err.OperationalError(1045, "Access denied"), True),
        ("mysql unknown database", pymysql.err.OperationalError(1049, "Unknown database"), True),
        ("mysql too many", pymysql.err.OperationalError(1040, "Too many connections"), False),
        ("mysql refused", pymysql.err.OperationalError(2003, "Can't connect"), False),
        (
            "wrapped password",
            Wrapper(pg.InvalidPasswordError("password authentication failed")),
            True,
        ),
        ("wrapped refused", Wrapper(ConnectionRefusedError(111, "refused")), False),
    ]
    return [pytest.param(exc, permanent, id=name) for name, exc, permanent in cases]


@pytest.mark.parametrize(("exc", "permanent"), _rule_cases())
def test_permanent_connect_error_rules(exc: BaseException, permanent: bool) -> None:
    from poolbridge.drivers.connect_errors import is_permanent_connect_error

    assert is_permanent_connect_error(exc) is permanent
