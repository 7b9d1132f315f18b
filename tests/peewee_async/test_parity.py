"""Stock peewee-async vs poolbridge's peewee-async databases: what the user observes.

The stock side is written by hand with peewee-async's own classes and arguments (never
through poolbridge's translation); the poolbridge side is ``database(config)``. Compared:
error classes on closed and exhausted pools (through peewee's own exception wrapper),
connect kwargs and session settings seen on the server, the synchronous connection's
identity (on an embedded PostgreSQL with scram-sha-256 and a MariaDB user with a password),
the native pool's attributes, and ``aio_close()`` with a connection in use.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import peewee
import peewee_async
import pytest

import poolbridge
from poolbridge import PoolConfig, UnsupportedOptionError
from poolbridge.adapters.peewee_async import database
from poolbridge.adapters.peewee_async._pool_view import SURFACE
from poolbridge.testing.admin import in_ci

DRIVERS = ["aiopg", "psycopg", "aiomysql", "aiosqlite"]


def _url(request: pytest.FixtureRequest, driver: str) -> str:
    which = {"aiomysql": "mysql_url", "aiosqlite": "sqlite_url"}.get(driver, "pg_url")
    return str(request.getfixturevalue(which))


def _stock(driver: str, url: str, *, extra: dict[str, Any] | None = None, **pool: Any) -> Any:
    """peewee-async's own database for ``url``, with its native arguments (``extra``: more
    connect kwargs)."""
    u = urlsplit(url)
    name = u.path[1:]
    if driver == "aiosqlite":
        return peewee_async.SqliteDatabase(name)
    creds = {"host": u.hostname, "port": u.port, "user": u.username, "password": u.password or ""}
    creds.update(extra or {})
    if driver == "aiopg":
        return peewee_async.PostgresqlDatabase(name, **creds, pool_params=pool)
    if driver == "psycopg":
        return peewee_async.Psycopg3Database(name, **creds, pool_params=pool)
    return peewee_async.MySQLDatabase(name, **creds, pool_params=pool)


def _ours(driver: str, url: str, **fields: Any) -> Any:
    fields.setdefault("acquire_timeout", 10)
    return database(PoolConfig(url=url, driver=driver, name="pb_pw_parity", **fields))


def _model(db: Any) -> type[peewee.Model]:
    class Thing(peewee_async.AioModel):
        name = peewee.CharField()

        class Meta:
            database = db
            table_name = "pb_pw_parity_never_created"

    return Thing


async def _raised(coro: Any) -> BaseException:
    try:
        await coro
    except BaseException as exc:  # the class is what is compared
        return exc
    raise AssertionError("no error raised")


async def _conn_error(db: Any) -> BaseException:
    async def use() -> None:
        async with db.aio_connection():
            pass

    return await _raised(use())


async def _closed_errors(db: Any) -> dict[str, BaseException]:
    await db.aio_connect()
    await db.aio_close()
    model = _model(db)
    errors = {
        "aio_execute_sql": await _raised(db.aio_execute_sql("SELECT 1")),
        "aio_execute": await _raised(db.aio_execute(model.select())),
        "model query": await _raised(model.select().aio_execute()),
        "aio_connection": await _conn_error(db),
    }
    await db.aio_connect()  # aio_connect() after aio_close() opens the pool again
    try:
        row = await db.aio_execute_sql("SELECT 1", fetch_results=peewee_async.databases.fetchone)
        assert tuple(row) == (1,)
    finally:
        await db.aio_close()
    return errors


@pytest.mark.asyncio
@pytest.mark.parametrize("driver", DRIVERS)
async def test_closed_database_raises_what_stock_raises(
    request: pytest.FixtureRequest, driver: str
) -> None:
    url = _url(request, driver)
    stock = await _closed_errors(_stock(driver, url))
    ours = await _closed_errors(_ours(driver, url, min_size=1, max_size=2))
    for entry, stock_exc in stock.items():
        ours_exc = ours[entry]
        # what an ``except`` clause written for the stock stack catches, catches ours
        assert isinstance(ours_exc, type(stock_exc)), (entry, stock_exc, ours_exc)
        if isinstance(stock_exc, peewee.PeeweeException):
            assert type(ours_exc) is type(stock_exc), (entry, stock_exc, ours_exc)
            cause = ours_exc.__context__
            assert isinstance(cause, type(stock_exc.__context__)), (entry, cause)
            assert isinstance(cause, poolbridge.PoolClosed), (entry, cause)
        else:
            assert isinstance(ours_exc, poolbridge.PoolClosed), (entry, ours_exc)
    # stock: RuntimeError on aiopg/aiomysql/SQLite, peewee.OperationalError via psycopg_pool
    expected = peewee.OperationalError if driver == "psycopg" else RuntimeError
    assert isinstance(stock["aio_execute_sql"], expected)


async def _exhausted_error(db: Any, wait: float) -> BaseException | None:
    """Hold the only connection in one task; query from another (None: still waiting)."""
    await db.aio_connect()
    held = asyncio.Event()
    done = asyncio.Event()

    async def holder() -> None:
        async with db.aio_connection():
            held.set()
            await done.wait()

    task = asyncio.create_task(holder())
    await held.wait()
    try:
        await asyncio.wait_for(db.aio_execute_sql("SELECT 1"), wait)
    except TimeoutError as exc:
        if type(exc) is TimeoutError:  # asyncio.wait_for's: the pool is still waiting
            return None
        return exc
    except Exception as exc:  # the class is what is compared
        return exc
    finally:
        done.set()
        await task
        await db.aio_close()
    raise AssertionError("an exhausted pool handed out a connection")


@pytest.mark.asyncio
@pytest.mark.parametrize("driver", ["aiopg", "psycopg", "aiomysql"])
async def test_exhausted_pool_error_classes(request: pytest.FixtureRequest, driver: str) -> None:
    url = _url(request, driver)
    if driver == "psycopg":
        stock_db = _stock(driver, url, min_size=1, max_size=1, timeout=0.3)
    else:
        stock_db = _stock(driver, url, minsize=1, maxsize=1)
    stock = await _exhausted_error(stock_db, 0.6)
    ours = await _exhausted_error(
        _ours(driver, url, min_size=1, max_size=1, acquire_timeout=0.3), 0.6
    )
    assert ours is not None
    if driver == "psycopg":
        # psycopg_pool's PoolTimeout, mapped by peewee's wrapper: the same class on both
        assert type(stock) is peewee.OperationalError
        assert type(ours) is peewee.OperationalError
        assert isinstance(ours.__context__, type(stock.__context__))
        assert isinstance(ours.__context__, poolbridge.PoolTimeout)
    else:
        # aiopg's and aiomysql's pools wait forever; acquire_timeout is poolbridge's knob
        assert stock is None
        assert isinstance(ours, poolbridge.PoolTimeout) and isinstance(ours, TimeoutError)


async def _mysql_facts(db: Any) -> tuple[Any, ...]:
    await db.aio_connect()
    try:
        row = await db.aio_execute_sql(
            "SELECT @@SESSION.sql_mode, 'a' || 'b', @@character_set_client, @pb_init",
            fetch_results=peewee_async.databases.fetchone,
        )
        return tuple(row)
    finally:
        await db.aio_close()


@pytest.mark.asyncio
async def test_mysql_connect_kwargs_reach_the_server(mysql_url: str) -> None:
    stock = _stock(
        "aiomysql", mysql_url, extra={"init_command": "SET @pb_init = 7"}, minsize=1, maxsize=2
    )
    ours = database(
        PoolConfig(url=mysql_url, driver="aiomysql", name="pb_pw_kw"),
        init_command="SET @pb_init = 7",
    )
    stock_facts = await _mysql_facts(stock)
    ours_facts = await _mysql_facts(ours)
    assert "PIPES_AS_CONCAT" in stock_facts[0]
    assert ours_facts == stock_facts
    assert ours_facts[1] == "ab" and ours_facts[3] == 7


async def _pg_facts(db: Any) -> tuple[Any, ...]:
    await db.aio_connect()
    try:
        row = await db.aio_execute_sql(
            "SELECT current_setting('application_name'), '{\"a\": 1}'::json",
            fetch_results=peewee_async.databases.fetchone,
        )
        return tuple(row)
    finally:
        await db.aio_close()


@pytest.mark.asyncio
async def test_aiopg_connect_kwargs_reach_the_server(pg_url: str) -> None:
    u = urlsplit(pg_url)
    stock = peewee_async.PostgresqlDatabase(
        u.path.lstrip("/"), host=u.hostname, port=u.port, user=u.username,
        application_name="pb_pw_app", pool_params={"minsize": 1, "maxsize": 2},
    )  # fmt: skip
    ours = database(
        PoolConfig(url=pg_url, driver="aiopg", name="pb_pw_kw"), application_name="pb_pw_app"
    )
    assert await _pg_facts(ours) == await _pg_facts(stock) == ("pb_pw_app", {"a": 1})


@pytest.mark.parametrize(
    ("driver", "kwargs", "named"),
    [
        ("aiopg", {"minsize": 3}, "minsize"),
        ("aiopg", {"on_connect": print}, "on_connect"),
        ("psycopg", {"pool_params": {"max_size": 3}}, "max_size"),
        ("psycopg", {"sslmode": "require"}, "sslmode"),
        ("aiomysql", {"host": "10.0.0.1"}, "host"),
        ("aiomysql", {"loop": None}, "loop"),
    ],
)
def test_keys_the_config_owns_are_refused_by_name(
    driver: str, kwargs: dict[str, Any], named: str
) -> None:
    url = "mysql://root@127.0.0.1/test" if driver == "aiomysql" else "postgresql://u@h/db"
    cfg = PoolConfig(url=url, driver=driver, name="pb_pw_refuse")
    if "pool_params" in kwargs:
        from poolbridge.adapters.peewee_async import Psycopg3Database, pool_params

        with pytest.raises(UnsupportedOptionError) as err:
            Psycopg3Database("db", pool_params={**pool_params(cfg), **kwargs["pool_params"]})
    else:
        with pytest.raises(UnsupportedOptionError) as err:
            database(cfg, **kwargs)
    assert named in err.value.problems


# -- the synchronous connection -------------------------------------------------------------

ROLE = "pb_pw_sync_role"


@pytest.fixture(scope="module")
def scram_server() -> Iterator[tuple[str, str]]:
    """An embedded PostgreSQL whose TCP connections need a scram-sha-256 password; yields
    (URL without password, password) for a role of its own."""
    from poolbridge.testing.servers.embedded import EmbeddedPostgres

    try:
        server = EmbeddedPostgres()
        server.start()
    except Exception as exc:  # pragma: no cover - environment dependent
        if in_ci():  # CI=true: a server that cannot start is a failure, not a skip
            pytest.fail(f"embedded PostgreSQL did not start: {exc}")
        pytest.skip(f"embedded PostgreSQL did not start: {exc}")
    password = secrets.token_hex(8)
    try:
        import psycopg

        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("SET password_encryption = 'scram-sha-256'")
            conn.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{password}'")
            conn.execute(f"GRANT ALL ON SCHEMA public TO {ROLE}")
        hba = server.pgdata / "pg_hba.conf"
        hba.write_text(
            "local all all trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
            "host all all ::1/128 scram-sha-256\n"
        )
        server._pg_ctl(["reload"])
        time.sleep(0.3)
        yield f"postgresql://{ROLE}@127.0.0.1:{server.port}/postgres", password
    finally:
        server.close()


def _sync_identity(db: Any, sql: str) -> Any:
    with db.allow_sync():
        db.connect(reuse_if_open=True)
        return db.execute_sql(sql).fetchone()[0]


async def _async_identity(db: Any, sql: str) -> Any:
    await db.aio_connect()
    try:
        return (await db.aio_execute_sql(sql, fetch_results=peewee_async.databases.fetchone))[0]
    finally:
        await db.aio_close()


@pytest.mark.asyncio
@pytest.mark.parametrize("driver", ["aiopg", "psycopg"])
async def test_sync_connection_uses_the_configs_credentials_pg(
    scram_server: tuple[str, str], driver: str
) -> None:
    url, password = scram_server
    u = urlsplit(url)
    sql = "SELECT current_user"
    stock = _stock(driver, url.replace(f"{ROLE}@", f"{ROLE}:{password}@"))

    async def provider() -> str:
        return password

    ours = database(
        PoolConfig(
            url=url, driver=driver, name="pb_pw_sync", session={"work_mem": "5MB"},
            # a coroutine provider on one driver: the sync connect resolves it too
            password=password if driver == "aiopg" else provider,
        )
    )  # fmt: skip
    assert u.hostname == "127.0.0.1"
    stock_ids = (
        await asyncio.to_thread(_sync_identity, stock, sql),
        await _async_identity(stock, sql),
    )
    ours_ids = (
        await asyncio.to_thread(_sync_identity, ours, sql),
        await _async_identity(ours, sql),
    )
    assert ours_ids == stock_ids == (ROLE, ROLE)
    # the session settings of the async connections hold on the sync one too
    assert await asyncio.to_thread(_sync_identity, ours, "SHOW work_mem") == "5MB"
    assert password not in repr(ours.connect_params)  # resolved per connect, not kept


@pytest.mark.asyncio
async def test_sync_connection_uses_the_configs_credentials_mysql(mysql_url: str) -> None:
    import pymysql

    u = urlsplit(mysql_url)
    user, password = f"pb_pw_{secrets.token_hex(3)}", secrets.token_hex(8)
    admin = pymysql.connect(host=u.hostname, port=u.port or 3306, user=u.username, password="")
    try:
        with admin.cursor() as cur:
            cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'")
            cur.execute(f"GRANT SELECT ON test.* TO '{user}'@'%'")
        url = f"mysql://{user}@{u.hostname}:{u.port or 3306}/test"
        ours = database(
            PoolConfig(
                url=url, driver="aiomysql", password=password, name="pb_pw_my",
                session={"wait_timeout": 1234},
            )
        )  # fmt: skip
        stock = _stock("aiomysql", url.replace(f"{user}@", f"{user}:{password}@"))
        sql = "SELECT CURRENT_USER()"
        stock_ids = (
            await asyncio.to_thread(_sync_identity, stock, sql),
            await _async_identity(stock, sql),
        )
        ours_ids = (
            await asyncio.to_thread(_sync_identity, ours, sql),
            await _async_identity(ours, sql),
        )
        assert ours_ids == stock_ids == (f"{user}@%", f"{user}@%")
        wait = "SELECT @@SESSION.wait_timeout"
        assert await asyncio.to_thread(_sync_identity, ours, wait) == 1234
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")
        admin.close()


# -- the native pool's attributes -------------------------------------------------------------

#: attributes whose values reflect the configuration / state and must be equal
_VALUES = (
    "echo", "minsize", "maxsize", "size", "freesize", "closed", "timeout", "_recycle",
    "_timeout", "_enable_json", "_enable_hstore", "_enable_uuid", "_echo", "_minsize",
    "_closing", "_closed", "_acquiring",
)  # fmt: skip
_SIZED = ("_used", "_free", "_terminated", "_opened_connections")


def _snapshot(pool: Any, driver: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in SURFACE[driver]:
        if name in _VALUES:
            out[name] = getattr(pool, name)
        elif name in _SIZED:
            out[name] = len(getattr(pool, name))
    if driver == "aiosqlite":
        out["has_acquired_connections"] = pool.has_acquired_connections()
    return out


@contextlib.asynccontextmanager
async def _opened(db: Any) -> AsyncIterator[Any]:
    await db.aio_connect()
    try:
        yield db.pool_backend.pool
    finally:
        await db.aio_close()


@pytest.mark.asyncio
@pytest.mark.parametrize("driver", ["aiopg", "aiomysql", "aiosqlite"])
async def test_native_pool_attributes_match_stock(
    request: pytest.FixtureRequest, driver: str
) -> None:
    url = _url(request, driver)
    native = {} if driver == "aiosqlite" else {"minsize": 2, "maxsize": 4, "pool_recycle": 30}
    stock_db = _stock(driver, url, **native)
    ours_db = _ours(driver, url, min_size=2, max_size=4, max_lifetime=30)
    async with _opened(stock_db) as stock, _opened(ours_db) as ours:
        # from_pool_fill: aiopg's constructor of a pool, not something a pool is asked
        public = {n for n in dir(stock) if not n.startswith("_")} - {"from_pool_fill"}
        assert public <= set(dir(ours)), public - set(dir(ours))
        for name in SURFACE[driver]:
            assert hasattr(stock, name), f"the stock {driver} pool has no {name} any more"
            assert hasattr(ours, name), name
        if driver == "aiosqlite":  # one connection per acquire: nothing idle to compare
            assert ours.database == stock.database
        else:
            assert _snapshot(ours, driver) == _snapshot(stock, driver)
        held = {}
        for side, db, pool in (("stock", stock_db, stock), ("ours", ours_db, ours)):
            # one after the other: peewee-async's task-local connection is shared by
            # every database, a second aio_connection() here would reuse the first's
            async with db.aio_connection():
                held[side] = _snapshot(pool, driver)
        if driver == "aiosqlite":
            # peewee-async's AioSqlitePool never fills _opened_connections (it always says
            # nothing is acquired); poolbridge's counts the connection in use
            assert held["stock"]["_opened_connections"] == 0
            assert held["ours"]["_opened_connections"] == 1
            assert held["ours"]["has_acquired_connections"]
        else:
            assert held["ours"] == held["stock"]
            assert held["ours"]["_used"] == 1
        if driver != "aiosqlite":
            with pytest.raises(AttributeError):
                ours.maxsize = 10
    assert ours.closed and stock.closed


@pytest.mark.asyncio
async def test_psycopg_pool_attributes_match_stock(pg_url: str) -> None:
    stock_db = _stock(
        "psycopg", pg_url, min_size=2, max_size=4, timeout=7, max_lifetime=300,
        max_idle=60, max_waiting=5,
    )  # fmt: skip
    ours_db = _ours(
        "psycopg", pg_url, min_size=2, max_size=4, acquire_timeout=7, max_lifetime=300,
        max_idle=60, max_waiting=5,
    )  # fmt: skip
    names = ("min_size", "max_size", "timeout", "max_lifetime", "max_idle", "max_waiting")
    async with _opened(stock_db) as stock, _opened(ours_db) as ours:
        public = {n for n in dir(stock) if not n.startswith("_")}
        assert public <= set(dir(ours)), public - set(dir(ours))
        assert {n: getattr(ours, n) for n in names} == {n: getattr(stock, n) for n in names}
        assert ours.get_stats()["pool_size"] == stock.get_stats()["pool_size"] == 2


# -- aio_close() with a connection in use ---------------------------------------------------


async def _close_while_holding(db: Any) -> float:
    await db.aio_connect()
    async with db.aio_connection():
        t0 = time.monotonic()
        await db.aio_close()
        took = time.monotonic() - t0
    return took


@pytest.mark.asyncio
@pytest.mark.parametrize("driver", DRIVERS)
async def test_aio_close_returns_at_once_like_stock(
    request: pytest.FixtureRequest, driver: str
) -> None:
    url = _url(request, driver)
    stock = await _close_while_holding(_stock(driver, url))
    ours = await _close_while_holding(_ours(driver, url, min_size=1, acquire_timeout=10))
    assert stock < 2 and ours < 2, (stock, ours)


def test_a_database_name_other_than_the_urls_is_refused() -> None:
    from poolbridge.adapters.peewee_async import PostgresqlDatabase, pool_params

    cfg = PoolConfig(url="postgresql://u@127.0.0.1/db", driver="aiopg", name="pb_pw_name")
    with pytest.raises(UnsupportedOptionError) as err:
        PostgresqlDatabase("other", pool_params=pool_params(cfg))
    assert "database" in err.value.problems
    assert PostgresqlDatabase("db", pool_params=pool_params(cfg)).database == "db"


def test_sync_connect_params_carry_the_async_tls() -> None:
    """The embedded server is built without TLS and the system servers may not be
    reconfigured: the TLS parameters are compared with the async connection's as data."""
    import ssl

    from poolbridge.adapters.peewee_async._backend import sync_connect_params
    from poolbridge.drivers.aiomysql import AiomysqlShim
    from poolbridge.drivers.aiopg import AiopgShim

    pg = PoolConfig(url="postgresql://u@127.0.0.1:5439/db", driver="aiopg", ssl="verify-full")
    sync, aio = sync_connect_params("aiopg", pg), AiopgShim().connect_kwargs(pg)
    assert sync["sslmode"] == aio["sslmode"] == "verify-full"
    assert {k: sync[k] for k in ("host", "port", "user")} == {
        "host": "127.0.0.1",
        "port": 5439,
        "user": "u",
    }
    assert sync_connect_params("psycopg", pg)["sslmode"] == "verify-full"
    ctx = ssl.create_default_context()
    my = PoolConfig(url="mysql://u@127.0.0.1/test", driver="aiomysql", ssl=ctx)
    assert (
        sync_connect_params("aiomysql", my)["ssl"]
        is AiomysqlShim().connect_kwargs(my)["ssl"]
        is ctx
    )
