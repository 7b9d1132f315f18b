"""The private members of peewee, peewee-async, aiopg and aiomysql the peewee-async adapter
relies on (docs/internals.md, "Private members used") still exist and behave as relied on.

No server needed: each check reads the installed library. A failure names the entry of
docs/internals.md to revisit.
"""

from __future__ import annotations

import contextvars
import inspect
import re

import aiomysql.pool
import aiopg.pool
import peewee
import peewee_async
import peewee_async.connection
import peewee_async.pool
import pytest

from poolbridge.adapters.peewee_async._backend import PoolClosedError
from poolbridge.adapters.peewee_async._pool_view import SURFACE

ENTRY = "docs/internals.md, 'Private members used', peewee-async adapter: "


def _source(obj: object) -> str:
    return inspect.getsource(obj)  # type: ignore[arg-type]


def test_peewee_connect_calls_underscore_connect_under_its_lock() -> None:
    src = _source(peewee.Database.connect)
    assert "with self._lock:" in src and "self._connect()" in src, (
        ENTRY + "peewee's Database.connect() no longer calls self._connect() under self._lock; "
        "poolbridge's sync connection overrides _connect() and swaps connect_params in it"
    )
    for cls in (
        peewee_async.PostgresqlDatabase,
        peewee_async.Psycopg3Database,
        peewee_async.MySQLDatabase,
    ):
        assert "self.connect_params" in _source(cls._connect) or any(
            "self.connect_params" in _source(base._connect)
            for base in cls.__mro__[1:]
            if "_connect" in vars(base)
        ), ENTRY + f"{cls.__name__}._connect() no longer reads self.connect_params"


def test_peewee_exception_wrapper_maps_by_name_then_first_base() -> None:
    psycopg_pool_errors = pytest.importorskip("poolbridge.adapters.peewee_async._psycopg")
    for cls in (
        psycopg_pool_errors.PoolClosed,
        psycopg_pool_errors.PoolTimeout,
        psycopg_pool_errors.TooManyRequests,
    ):
        with pytest.raises(peewee.OperationalError), peewee.__exception_wrapper__:
            raise cls("x")
    # the aiopg/aiomysql/SQLite closed-pool error passes unmapped, as the stock RuntimeError
    with pytest.raises(PoolClosedError), peewee.__exception_wrapper__:
        raise PoolClosedError("x")
    wrapper = _source(peewee.ExceptionWrapper.__exit__)
    assert "__name__" in wrapper and "__bases__[0]" in wrapper, (
        ENTRY + "peewee's ExceptionWrapper no longer maps by __name__ then __bases__[0]"
    )


def test_peewee_mysql_defaults_are_connect_params() -> None:
    db = peewee.MySQLDatabase("x")
    assert db.connect_params.get("sql_mode") == "PIPES_AS_CONCAT", (
        ENTRY + "peewee's MySQLDatabase no longer puts sql_mode in connect_params"
    )
    assert {"charset", "use_unicode"} <= set(db.connect_params), ENTRY + "MySQL defaults"


def test_peewee_async_connection_context_is_the_contextvar_it_reads() -> None:
    var = peewee_async.connection.connection_context
    assert isinstance(var, contextvars.ContextVar), ENTRY + "connection_context"
    src = _source(peewee_async.connection.ConnectionContextManager.__init__)
    assert "connection_context.get()" in src, (
        ENTRY + "ConnectionContextManager no longer reads connection_context at creation"
    )


def test_peewee_async_builds_the_backend_from_pool_params() -> None:
    init = _source(peewee_async.databases.AioDatabase.init)
    assert "self.pool_backend_cls(database=self.database, **self.pool_params)" in init, (
        ENTRY + "AioDatabase.init() builds its backend differently"
    )
    params = _source(peewee_async.databases.AioDatabase.init_pool_params)
    assert "self.pool_params.update(self.connect_params)" in params, (
        ENTRY + "connect kwargs no longer reach the backend through pool_params"
    )
    sig = inspect.signature(peewee_async.pool.PoolBackend.__init__)
    assert sig.parameters["database"].kind is inspect.Parameter.KEYWORD_ONLY, ENTRY + "backend"
    assert "self.pool" in _source(peewee_async.pool.PoolBackend.__init__), ENTRY + "backend.pool"
    acquire = _source(peewee_async.pool.AioPgPoolBackend.acquire)
    assert "if self.pool is None" in acquire, (
        ENTRY + "the stock backends reconnect on acquire differently (closed-pool parity)"
    )


def test_peewee_async_pool_params_defaults() -> None:
    pg = peewee_async.PostgresqlDatabase("x")
    assert pg.pool_params == {"enable_json": True, "enable_hstore": False}, (
        ENTRY + f"peewee-async's aiopg defaults changed: {pg.pool_params}"
    )
    my = peewee_async.MySQLDatabase("x")
    assert my.pool_params.get("autocommit") is True, ENTRY + "aiomysql autocommit default"


@pytest.mark.parametrize(
    ("driver", "cls"),
    [
        ("aiopg", aiopg.pool.Pool),
        ("aiomysql", aiomysql.pool.Pool),
        ("aiosqlite", peewee_async.pool.AioSqlitePool),
    ],
)
def test_native_pool_attributes_still_exist(driver: str, cls: type) -> None:
    init = _source(cls.__init__)
    missing = [
        n
        for n in SURFACE[driver]
        if not hasattr(cls, n) and not re.search(rf"self\.{n}\s*[:=]", init)
    ]
    assert not missing, (
        ENTRY + f"{cls.__module__}.{cls.__name__} no longer has {missing}: "
        "poolbridge's pool view (_pool_view.SURFACE) mirrors them"
    )


def test_schema_manager_builds_its_sql_without_running_it() -> None:
    class Probe(peewee.Model):
        name = peewee.CharField(index=True)

        class Meta:
            database = peewee.SqliteDatabase(None)
            table_name = "pb_probe"

    manager = peewee.SchemaManager(Probe)
    for name in ("_create_table", "_create_indexes", "_drop_table"):
        assert callable(getattr(manager, name, None)), (
            ENTRY + f"peewee's SchemaManager.{name}() is gone; the stock-parity twin reads "
            "the schema SQL from it"
        )
    sql = [manager._create_table().query()[0], manager._drop_table().query()[0]]
    sql += [ctx.query()[0] for ctx in manager._create_indexes()]
    assert sql[0].startswith('CREATE TABLE IF NOT EXISTS "pb_probe"'), ENTRY + sql[0]
    assert sql[1].startswith('DROP TABLE IF EXISTS "pb_probe"'), ENTRY + sql[1]
    assert any("CREATE INDEX" in q for q in sql[2:]), ENTRY + repr(sql)
