"""Stock parity: the same scenario on Tortoise's own client and through poolbridge.

The stock side is configured by hand with Tortoise's native connection dict (``engine`` +
``credentials``), never through poolbridge's translation. What is compared is what the
user and the server observe: the client Tortoise derives everything from (dialect,
capabilities, executor, schema generator, migration schema editor, ``sqlmigrate``'s
transaction wrapping), the SQL of migration operations (and that it runs), session
settings read back from the server, and the error classes of broken configurations.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import pytest

from poolbridge import (
    ConfigError,
    ConnectError,
    PoolConfig,
    UnsupportedOptionError,
    UnsupportedOptionWarning,
    open_pool,
)
from poolbridge.adapters.tortoise import adapter, tortoise_config
from poolbridge.drivers.connect_errors import error_chain

from .serverside import execute

NO_MODELS = "poolbridge.adapters.tortoise.backends"  # an importable module without models


def _stock_credentials(url: str) -> dict[str, Any]:
    """Tortoise credentials written by hand from a test server URL."""
    parts = urlsplit(url)
    return {
        "host": parts.hostname,
        "port": parts.port,
        "user": parts.username,
        "password": parts.password or "",
        "database": parts.path.lstrip("/"),
    }


def _stock_engine(backend: str) -> str:
    return f"tortoise.backends.{backend}"


@asynccontextmanager
async def stock_client(engine: str, credentials: dict[str, Any]) -> AsyncIterator[Any]:
    """Tortoise's own client in a TortoiseContext of its own (connected lazily, as stock)."""
    from tortoise.context import TortoiseContext

    ctx = TortoiseContext()
    config = {
        "connections": {"stock": {"engine": engine, "credentials": credentials}},
        "apps": {"pbparity": {"models": [NO_MODELS], "default_connection": "stock"}},
    }
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*has no models", category=RuntimeWarning)
        await ctx.init(config=config)
    try:
        with ctx:
            yield ctx.connections.get("stock")
    finally:
        await ctx.close_connections()


@asynccontextmanager
async def pb_client(config: PoolConfig) -> AsyncIterator[Any]:
    """poolbridge's client for ``config`` (opened, in its own TortoiseContext)."""
    pool = await open_pool(config, adapter="tortoise")
    try:
        with pool.context:
            yield pool.native
    finally:
        await pool.close()


def _case(request: pytest.FixtureRequest, backend: str) -> tuple[str, dict[str, Any], PoolConfig]:
    """(stock engine, stock credentials, PoolConfig) for one backend of the test servers."""
    if backend == "sqlite":
        path = str(request.getfixturevalue("tmp_path") / "parity.db")
        return _stock_engine("sqlite"), {"file_path": path}, PoolConfig(url=f"sqlite:///{path}")
    url = str(request.getfixturevalue("mysql_url" if backend == "mysql" else "pg_url"))
    driver = {"mysql": None, "asyncpg": "asyncpg", "psycopg": "psycopg"}[backend]
    return (
        _stock_engine(backend),
        _stock_credentials(url),
        PoolConfig(url=url, driver=driver, min_size=1, max_size=2, name="pb-parity"),
    )


BACKENDS = ["asyncpg", "psycopg", "mysql", "sqlite"]


def _sqlmigrate_wraps_in_transaction(engine: str) -> bool:
    # `tortoise sqlmigrate` prints BEGIN/COMMIT when the connection's engine path says
    # PostgreSQL (tortoise/cli/cli.py, sqlmigrate_cmd); test_private_members pins that rule
    return "postgres" in engine or "psycopg" in engine


def _identity(client: Any) -> dict[str, Any]:
    from tortoise.migrations.executor import MigrationExecutor

    editor = MigrationExecutor(client, {})._schema_editor(atomic=False, collect_sql=True)
    return {
        "schema editor": type(editor),
        "dialect": client.capabilities.dialect,
        "capabilities": dict(vars(client.capabilities)),
        "executor": client.executor_class,
        "schema generator": client.schema_generator,
        "query class": client.query_class,
    }


@pytest.mark.asyncio
@pytest.mark.parametrize("backend", BACKENDS)
async def test_client_identity_is_stock(request: pytest.FixtureRequest, backend: str) -> None:
    engine, creds, config = _case(request, backend)
    async with stock_client(engine, creds) as stock:
        expected = _identity(stock)
        stock_cls = type(stock)
    async with pb_client(config) as client:
        assert isinstance(client, stock_cls)
        assert client.poolbridge is not None  # poolbridge's own client, not Tortoise's
        assert _identity(client) == expected
    pb_engine = tortoise_config(config)["connections"]["default"]["engine"]
    assert pb_engine == f"poolbridge.adapters.tortoise.backends.{backend}"
    assert _sqlmigrate_wraps_in_transaction(pb_engine) == _sqlmigrate_wraps_in_transaction(engine)


@pytest.mark.parametrize("path", ["poolbridge.adapters.tortoise.backends",
                                  "poolbridge.adapters._tortoise_client"])  # fmt: skip
@pytest.mark.parametrize("backend", ["asyncpg", "mysql"])
def test_earlier_engine_paths_give_the_same_clients(
    request: pytest.FixtureRequest, backend: str, path: str
) -> None:
    import importlib

    _, _, config = _case(request, backend)
    conn = tortoise_config(config)["connections"]["default"]
    current = importlib.import_module(conn["engine"]).get_client_class(conn)
    assert importlib.import_module(path).get_client_class(conn) is current


def _operations(tag: str) -> list[Any]:
    from tortoise import fields
    from tortoise.migrations.operations import (
        AddField,
        AlterField,
        CreateModel,
        DeleteModel,
        RemoveField,
        RenameField,
        RenameModel,
    )

    first, second = f"Pbw{tag}", f"Pbg{tag}"
    return [
        CreateModel(
            first,
            [("id", fields.IntField(primary_key=True)), ("name", fields.CharField(max_length=20))],
        ),
        AddField(first, "size", fields.IntField(default=0)),
        AlterField(first, "name", fields.CharField(max_length=40)),
        RenameField(first, "size", "weight"),
        RemoveField(first, "weight"),
        RenameModel(first, second),
        DeleteModel(second),
    ]


async def _migrate(client: Any, ops: list[Any], *, collect: bool) -> list[str]:
    """Tortoise's migration machinery on ``client``: its executor picks the schema editor."""
    from tortoise.migrations.executor import MigrationExecutor
    from tortoise.migrations.migration import Migration
    from tortoise.migrations.schema_generator.state import State
    from tortoise.migrations.schema_generator.state_apps import StateApps

    editor = MigrationExecutor(client, {})._schema_editor(atomic=False, collect_sql=collect)
    migration = Migration("0001_parity", "pbparity")
    migration.operations = ops
    apps = StateApps(default_connections={"pbparity": client.connection_name})
    await migration.apply(State(models={}, apps=apps), schema_editor=editor, collect_sql=collect)
    return list(editor.collected_sql)


async def _columns(client: Any, backend: str, table: str) -> set[str]:
    if backend == "sqlite":
        _, rows = await client.execute_query(f"PRAGMA table_info({table})")
        return {row["name"] for row in rows}
    db = "DATABASE()" if backend == "mysql" else "current_schema()"
    _, rows = await client.execute_query(
        f"SELECT column_name AS c FROM information_schema.columns "
        f"WHERE table_schema = {db} AND table_name = '{table}'"
    )
    return {row["c"] for row in rows}


@pytest.mark.asyncio
@pytest.mark.parametrize("backend", BACKENDS)
async def test_migrations_emit_stock_sql_and_run(
    request: pytest.FixtureRequest, backend: str
) -> None:
    engine, creds, config = _case(request, backend)
    tag = uuid.uuid4().hex[:10]
    async with stock_client(engine, creds) as stock:
        expected = await _migrate(stock, _operations(tag), collect=True)
    async with pb_client(config) as client:
        assert await _migrate(client, _operations(tag), collect=True) == expected
        ops = _operations(tag)
        table = f"pbw{tag}"
        try:
            # create, add, alter, rename a field: the server accepts every statement
            await _migrate(client, ops[:4], collect=False)
            assert await _columns(client, backend, table) == {"id", "name", "weight"}
            # drop the field, rename the model, drop it
            await _migrate_rest(client, ops)
            assert await _columns(client, backend, table) == set()
            assert await _columns(client, backend, f"pbg{tag}") == set()
        finally:
            for name in (table, f"pbg{tag}"):
                await client.execute_script(f"DROP TABLE IF EXISTS {name}")


async def _migrate_rest(client: Any, ops: list[Any]) -> None:
    """Run ops[4:] on the state that ops[:4] left (replayed without touching the server)."""
    from tortoise.migrations.executor import MigrationExecutor
    from tortoise.migrations.migration import Migration
    from tortoise.migrations.schema_generator.state import State
    from tortoise.migrations.schema_generator.state_apps import StateApps

    apps = StateApps(default_connections={"pbparity": client.connection_name})
    state = State(models={}, apps=apps)
    done = Migration("0001_parity", "pbparity")
    done.operations = ops[:4]
    state = await done.apply(state)  # no schema editor: state only
    editor = MigrationExecutor(client, {})._schema_editor(atomic=False)
    rest = Migration("0002_parity", "pbparity")
    rest.operations = ops[4:]
    await rest.apply(state, schema_editor=editor)


# -- session settings seen by the server ---------------------------------------------------


async def _scalar(client: Any, sql: str) -> Any:
    _, rows = await client.execute_query(sql)
    return next(iter(dict(rows[0]).values()))


@pytest.mark.asyncio
@pytest.mark.parametrize("backend", ["asyncpg", "psycopg"])
async def test_postgres_keys_reach_the_server_as_stock(
    request: pytest.FixtureRequest, backend: str
) -> None:
    engine, creds, config = _case(request, backend)
    keys = {"schema": "pb_parity_schema", "application_name": "pb-parity-app"}
    queries = {
        "search_path": "SELECT current_setting('search_path') AS v",
        "application_name": "SELECT current_setting('application_name') AS v",
    }
    async with stock_client(engine, {**creds, **keys}) as stock:
        expected = {k: await _scalar(stock, q) for k, q in queries.items()}
    assert expected == {"search_path": "pb_parity_schema", "application_name": "pb-parity-app"}
    url = f"{config.url}?schema=pb_parity_schema&application_name=pb-parity-app"
    async with pb_client(PoolConfig(**{**config.to_dict(), "url": url})) as client:
        assert {k: await _scalar(client, q) for k, q in queries.items()} == expected
    # no key: the pool name is the default application_name (stock: the driver's default)
    async with pb_client(config) as client:
        assert await _scalar(client, queries["application_name"]) == "pb-parity"


@pytest.mark.asyncio
async def test_asyncpg_server_settings_reach_the_server_as_stock(pg_url: str) -> None:
    settings = {"server_settings": {"DateStyle": "SQL, DMY"}}
    engine, creds = _stock_engine("asyncpg"), _stock_credentials(pg_url)
    sql = "SELECT current_setting('DateStyle') AS v"
    async with stock_client(engine, {**creds, **settings}) as stock:
        expected = await _scalar(stock, sql)
    config = PoolConfig(url=pg_url, driver="asyncpg", driver_options=settings, name="pb-parity")
    async with pb_client(config) as client:
        assert await _scalar(client, sql) == expected == "SQL, DMY"


@pytest.mark.asyncio
async def test_mysql_keys_reach_the_server_as_stock(mysql_url: str) -> None:
    keys = {"charset": "latin1", "sql_mode": "ANSI_QUOTES"}
    queries = {
        "charset": "SELECT @@character_set_client AS v",
        "sql_mode": "SELECT @@sql_mode AS v",
    }
    tag = uuid.uuid4().hex[:10]
    async with stock_client(_stock_engine("mysql"), {**_stock_credentials(mysql_url), **keys}) as s:
        expected = {k: await _scalar(s, q) for k, q in queries.items()}
        expected_sql = await _migrate(s, _operations(tag)[:1], collect=True)
    assert expected == {"charset": "latin1", "sql_mode": "ANSI_QUOTES"}
    assert any("CHARACTER SET latin1" in line for line in expected_sql)
    url = f"{mysql_url}?charset=latin1&sql_mode=ANSI_QUOTES"
    async with pb_client(PoolConfig(url=url, min_size=2, max_size=2)) as client:
        assert {k: await _scalar(client, q) for k, q in queries.items()} == expected
        assert await _migrate(client, _operations(tag)[:1], collect=True) == expected_sql
        # every pooled connection, not only the first
        async with client.acquire_connection() as a, client.acquire_connection() as b:
            for conn in (a, b):
                async with conn.cursor() as cur:
                    await cur.execute("SELECT @@character_set_client")
                    assert (await cur.fetchone())[0] == "latin1"
    # Tortoise's maintenance connection (db_create / db_delete) gets the same keys
    from tortoise.context import TortoiseContext

    ctx = TortoiseContext()
    apps = {"pbparity": {"models": [NO_MODELS], "default_connection": "default"}}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*has no models", category=RuntimeWarning)
        await ctx.init(config=tortoise_config(PoolConfig(url=url), apps=apps))
    try:
        with ctx:
            maintenance = ctx.connections.get("default")
            await maintenance.create_connection(with_db=False)
            assert {k: await _scalar(maintenance, q) for k, q in queries.items()} == expected
            await maintenance.close()
    finally:
        await ctx.close_connections()


@pytest.mark.asyncio
async def test_mysql_bad_charset_fails_at_init_as_stock(mysql_url: str) -> None:
    from tortoise.exceptions import DBConnectionError

    creds = {**_stock_credentials(mysql_url), "charset": "no_such_charset"}
    async with stock_client(_stock_engine("mysql"), creds) as stock:
        with pytest.raises(DBConnectionError) as stock_error:
            await stock.create_connection(with_db=True)
    config = PoolConfig(url=f"{mysql_url}?charset=no_such_charset")
    with pytest.raises(DBConnectionError) as pb_error:
        await open_pool(config, adapter="tortoise")
    assert str(pb_error.value) == str(stock_error.value)
    # the maintenance path (db_create / db_delete) reads the same key
    conf = tortoise_config(config)["connections"]["default"]["credentials"]
    assert conf["charset"] == "no_such_charset"


@pytest.mark.asyncio
async def test_missing_database_raises_the_stock_error(pg_url: str, mysql_url: str) -> None:
    from tortoise.exceptions import DBConnectionError

    for url, backend in ((pg_url, "asyncpg"), (mysql_url, "mysql")):
        missing = url.rsplit("/", 1)[0] + "/pb_no_such_db_" + uuid.uuid4().hex[:8]
        creds = _stock_credentials(missing)
        async with stock_client(_stock_engine(backend), creds) as stock:
            with pytest.raises(DBConnectionError):
                await stock.create_connection(with_db=True)
        config = PoolConfig(url=missing, driver="asyncpg" if backend == "asyncpg" else None,
                            acquire_timeout=3, retry={"attempts": 1})  # fmt: skip
        with pytest.raises(DBConnectionError):
            await open_pool(config, adapter="tortoise")


# -- psycopg: the connection check stock Tortoise always runs --------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("pre_ping", [None, True, False])
async def test_psycopg_checks_connections_unless_told_not_to(
    pg_url: str, pre_ping: bool | None
) -> None:
    import psycopg

    async with stock_client(_stock_engine("psycopg"), _stock_credentials(pg_url)) as stock:
        await stock.create_connection(with_db=True)
        stock_checks = stock._pool._check is not None
    assert stock_checks
    name = f"pb-ping-{uuid.uuid4().hex[:8]}"
    config = PoolConfig(url=pg_url, driver="psycopg", min_size=1, max_size=1,
                        pre_ping=pre_ping, name=name)  # fmt: skip
    async with pb_client(config) as client:
        assert (client._pool._check is not None) == (pre_ping is not False)
        pid = await _scalar(client, "SELECT pg_backend_pid() AS v")
        await execute(pg_url, f"SELECT pg_terminate_backend({pid})")
        if pre_ping is False:
            # explicitly off: the dead connection is handed out (what the config asked for)
            with pytest.raises(psycopg.OperationalError):
                await _scalar(client, "SELECT 1 AS v")
        else:
            # unset (as stock) or on: checked on checkout and replaced, nobody notices
            assert await _scalar(client, "SELECT pg_backend_pid() AS v") != pid


# -- keys refused by name, SSL forms ---------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("postgresql+asyncpg://u@127.0.0.1/db?minsize=3", "minsize"),
        (
            "postgresql+asyncpg://u@127.0.0.1/db?max_inactive_connection_lifetime=5",
            "max_inactive_connection_lifetime",
        ),
        ("postgresql+psycopg://u@127.0.0.1/db?timeout=5", "timeout"),
        ("mysql://u@127.0.0.1/db?pool_recycle=5", "pool_recycle"),
    ],
)
def test_pool_keys_of_tortoise_are_refused_by_name(url: str, key: str) -> None:
    # a key that looks like a misspelt pool option is already a ConfigError with "did you
    # mean"; the others reach the adapter, which refuses them by name
    with pytest.raises((UnsupportedOptionError, ConfigError)) as caught:
        tortoise_config(PoolConfig(url=url))
    message = str(caught.value)
    if isinstance(caught.value, ConfigError):
        assert f"url query key {key!r}" in message and "did you mean" in message
    else:
        assert f"{key} (Tortoise key)" in message


def test_schema_is_a_session_setting_not_a_server_parameter() -> None:
    # the engine's asyncpg connect: search_path as Tortoise sets it, no "schema" parameter
    from poolbridge.adapters.tortoise import _translate
    from poolbridge.drivers.asyncpg import AsyncpgShim

    config = PoolConfig(url="postgresql://u@127.0.0.1/db?schema=app&sslmode=disable")
    kw = AsyncpgShim().connect_kwargs(_translate.engine_config(config, "asyncpg"))
    assert kw["server_settings"]["search_path"] == "app"
    assert "schema" not in kw.get("dsn", "") and "sslmode=disable" in kw["dsn"]


def test_ssl_true_and_contexts_keep_each_stacks_meaning() -> None:
    import ssl

    from poolbridge.adapters.tortoise import _translate
    from poolbridge.drivers.asyncpg import AsyncpgShim

    url = "postgresql://u@127.0.0.1/db"
    asyncpg_cfg = PoolConfig(url=url, driver="asyncpg", ssl=True)
    # asyncpg: True as stock (asyncpg reads it as verify-full), for Tortoise and the engine
    assert tortoise_config(asyncpg_cfg)["connections"]["default"]["credentials"]["ssl"] is True
    engine_kw = AsyncpgShim().connect_kwargs(_translate.engine_config(asyncpg_cfg, "asyncpg"))
    assert engine_kw["ssl"] is True
    # psycopg: True reaches Tortoise's client (stock: sslmode=require)
    psycopg_cfg = PoolConfig(url=url, driver="psycopg", ssl=True)
    assert tortoise_config(psycopg_cfg)["connections"]["default"]["credentials"]["ssl"] is True
    # psycopg + SSLContext: accepted as stock; what Tortoise drops is said, not silent
    ctx = ssl.create_default_context()
    with pytest.warns(UnsupportedOptionWarning, match="drops the context"):
        conf = tortoise_config(PoolConfig(url=url, driver="psycopg", ssl=ctx))
    assert conf["connections"]["default"]["credentials"]["ssl"] is ctx
    # MySQL: True reaches the driver as it is
    mysql_cfg = PoolConfig(url="mysql://u@127.0.0.1/db", ssl=True)
    driver = adapter.driver_for(mysql_cfg)
    assert _translate.engine_config(mysql_cfg, driver).driver_options["ssl"] is True


@pytest.mark.asyncio
async def test_sqlite_query_keys_are_pragmas_and_regexp_as_stock(tmp_path: Any) -> None:
    path = str(tmp_path / "pragmas.db")
    keys = {"journal_mode": "DELETE", "install_regexp_functions": True}
    sql = "SELECT count(*) AS n FROM (SELECT 'abc' AS s) WHERE s REGEXP '^a.c$'"
    async with stock_client(_stock_engine("sqlite"), {"file_path": path, **keys}) as stock:
        expected = (await _scalar(stock, "PRAGMA journal_mode"), await _scalar(stock, sql))
        expected_identity = _identity(stock)
    assert expected == ("delete", 1)
    url = f"sqlite:///{path}?journal_mode=DELETE&install_regexp_functions=true"
    async with pb_client(PoolConfig(url=url, min_size=2, max_size=2)) as client:
        assert _identity(client) == expected_identity
        # on every pooled connection, not only the first
        async with client.acquire_connection() as a, client.acquire_connection() as b:
            for conn in (a, b):
                async with conn.execute("PRAGMA journal_mode") as cur:
                    assert (await cur.fetchone())[0] == "delete"
        assert await _scalar(client, sql) == 1


def test_asyncpg_driver_keys_of_tortoise_are_typed_connect_keywords() -> None:
    from poolbridge.adapters.tortoise import _translate
    from poolbridge.drivers.asyncpg import AsyncpgShim

    url = "postgresql://u@127.0.0.1/db?statement_cache_size=0&command_timeout=5"
    config = PoolConfig(url=url)
    kw = AsyncpgShim().connect_kwargs(_translate.engine_config(config, "asyncpg"))
    assert kw["statement_cache_size"] == 0 and kw["command_timeout"] == 5.0
    assert "dsn" not in kw  # not sent to the server as startup parameters
    creds = tortoise_config(config)["connections"]["default"]["credentials"]
    assert creds["statement_cache_size"] == 0  # Tortoise's maintenance path gets them too


@pytest.mark.asyncio
async def test_exhausted_psycopg_pool_raises_what_stock_callers_catch(pg_url: str) -> None:
    import psycopg_pool

    from poolbridge import PoolTimeout

    creds = {**_stock_credentials(pg_url), "minsize": 1, "maxsize": 1, "timeout": 1}
    async with stock_client(_stock_engine("psycopg"), creds) as stock, stock.acquire_connection():
        with pytest.raises(Exception) as stock_error:
            await stock.execute_query("SELECT 1")
    assert isinstance(stock_error.value, psycopg_pool.PoolTimeout)
    config = PoolConfig(url=pg_url, driver="psycopg", min_size=1, max_size=1, acquire_timeout=1)
    async with pb_client(config) as client, client.acquire_connection():
        with pytest.raises(PoolTimeout) as pb_error:
            await client.execute_query("SELECT 1")
    # an `except psycopg_pool.PoolTimeout` written for stock Tortoise still catches it
    assert isinstance(pb_error.value, type(stock_error.value))


async def _outcome(run: Any) -> tuple[str, str]:
    try:
        await run()
    except Exception as exc:
        return type(exc).__name__, str(exc).split(":")[0]
    return "ok", ""


@pytest.mark.asyncio
@pytest.mark.parametrize("backend", ["asyncpg", "psycopg"])
async def test_ssl_true_reaches_the_server_as_stock(pg_url: str, backend: str) -> None:
    # the server answers the TLS request the same way for both (the test server has TLS off:
    # both fail alike; with TLS on both would connect)
    creds = {**_stock_credentials(pg_url), "ssl": True, "timeout": 1}

    async def stock() -> None:
        async with stock_client(_stock_engine(backend), creds) as client:
            await client.create_connection(with_db=True)

    async def pb() -> None:
        config = PoolConfig(url=pg_url, driver=backend, ssl=True, acquire_timeout=1,
                            connect_timeout=1, retry={"attempts": 1})  # fmt: skip
        async with pb_client(config):
            pass

    stock_type, _ = await _outcome(stock)
    assert stock_type != "ok"
    # poolbridge reports any failure to connect at open as one ConnectError (docs/errors.md);
    # it still is, or chains, the error stock Tortoise raises here
    with pytest.raises(ConnectError) as info:
        await pb()
    kinds = {c.__name__ for e in error_chain(info.value) for c in type(e).__mro__}
    assert stock_type in kinds, (stock_type, kinds)
