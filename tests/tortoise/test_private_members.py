"""Pins every private member of tortoise-orm (and asyncpg) the Tortoise adapter relies on.

Each test names the member and where poolbridge uses it (docs/internals.md, "Private
members used"). When one fails after a tortoise-orm upgrade, the adapter module named in the
message needs a look before the version cap in pyproject.toml moves.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from typing import Any

import pytest


def _member(owner: Any, name: str, used_by: str) -> Any:
    if not hasattr(owner, name):
        pytest.fail(
            f"{getattr(owner, '__name__', owner)}.{name} is gone: {used_by} relies on it "
            "(docs/internals.md, Private members used)"
        )
    return getattr(owner, name)


def test_migration_executor_reads_the_client_module_path() -> None:
    # backends.<backend> module layout: the executor picks its schema editor by substring
    from tortoise.backends.base.client import Capabilities
    from tortoise.migrations.executor import MigrationExecutor

    picked = {}
    for module in ("x.asyncpg", "x.psycopg", "x.mysql", "x.sqlite"):
        fake = type("C", (), {"__module__": module, "capabilities": Capabilities("sql"),
                              "connection_name": "c"})  # fmt: skip
        editor = _member(MigrationExecutor, "_schema_editor", "tortoise/backends/*.py")
        picked[module] = type(editor(MigrationExecutor(fake(), {}), False, True)).__name__
    assert picked == {
        "x.asyncpg": "AsyncpgSchemaEditor",
        "x.psycopg": "PsycopgSchemaEditor",
        "x.mysql": "MySQLSchemaEditor",
        "x.sqlite": "SqliteSchemaEditor",
    }, "MigrationExecutor._schema_editor no longer picks the editor from the module path"


def test_sqlmigrate_reads_the_engine_path() -> None:
    from tortoise.cli import cli

    source = inspect.getsource(cli.sqlmigrate_cmd)
    assert '"postgres" in engine or "psycopg" in engine' in source, (
        "tortoise sqlmigrate no longer decides BEGIN/COMMIT from the engine path: check the "
        "engine module names in poolbridge.adapters.tortoise.backends.ENGINE_MODULES"
    )


@pytest.mark.asyncio
async def test_client_attributes_the_clients_replace() -> None:
    from tortoise.backends.asyncpg.client import AsyncpgDBClient
    from tortoise.backends.mysql.client import MySQLClient
    from tortoise.backends.sqlite.client import SqliteClient

    where = "backends/_engine.py, backends/asyncpg.py, backends/mysql.py, _pool.py"
    pg = AsyncpgDBClient(connection_name="x", host="h", database="d", user="u")
    my = MySQLClient(connection_name="x", host="h", database="d", user="u", password="",
                     port=3306, storage_engine="MyISAM")  # fmt: skip
    for client in (pg, my):
        assert _member(client, "_pool", where) is None
        assert isinstance(_member(client, "_pool_init_lock", where), asyncio.Lock)
        assert _member(client, "_connection", where) is None
        for name in ("_close", "_expire_connections", "_in_transaction", "_post_connect",
                     "_check_loop"):  # fmt: skip
            assert callable(_member(type(client), name, where))
    assert my.charset == "utf8mb4" and my.storage_engine == "MyISAM"
    assert pg.schema is None and pg.server_settings == {}
    lite = SqliteClient("x.db", connection_name="x", journal_mode="DELETE")
    assert isinstance(_member(lite, "_lock", "_pool.py (SQLite :memory: close)"), asyncio.Lock)
    assert lite.pragmas["journal_mode"] == "DELETE"  # backends/sqlite.py reads the pragmas


def test_mysql_module_attributes() -> None:
    from tortoise.backends.mysql import client as tortoise_mysql

    names = vars(tortoise_mysql)
    for name in ("mysql", "errors", "charset_by_name"):
        assert name in names, (
            f"tortoise.backends.mysql.client.{name} is gone: backends/mysql.py and "
            "_translate.mysql_driver_of_tortoise rely on it"
        )
    assert names["charset_by_name"]("no_such_charset") is None


def test_transaction_context_internals() -> None:
    from tortoise.backends.base.client import TransactionContextPooled

    where = "_tx.py (GuardedTransactionContext)"
    init = inspect.signature(TransactionContextPooled.__init__)
    assert list(init.parameters)[1:3] == ["client", "pool_init_lock"], where
    ctx = TransactionContextPooled(type("W", (), {"connection_name": "x"})(), asyncio.Lock())
    assert isinstance(_member(ctx, "_pool_init_lock", where), asyncio.Lock)
    assert callable(_member(ctx, "ensure_connection", where))
    from tortoise.backends.asyncpg.client import TransactionWrapper

    assert "_parent" in inspect.getsource(TransactionWrapper.__init__), where


def test_current_context_var() -> None:
    from tortoise import context

    var = _member(context, "_current_context", "_pool.py (TortoisePool.entered)")
    assert isinstance(var, contextvars.ContextVar)


def test_asyncpg_top_xact_slot() -> None:
    import asyncpg.connection

    assert "_top_xact" in asyncpg.connection.Connection.__slots__, (
        "asyncpg Connection._top_xact is gone: _tx._forget_failed_begin relies on it"
    )


@pytest.mark.asyncio
async def test_psycopg_client_hands_create_pool_its_arguments() -> None:
    # backends/psycopg.py overrides create_pool and merges into conninfo "options"
    from tortoise.backends.psycopg.client import AsyncConnectionPool, PsycopgClient

    seen: dict[str, Any] = {}

    class Probe(PsycopgClient):
        async def create_pool(self, **kwargs: Any) -> Any:
            seen.update(kwargs)
            raise LookupError("probe")

    client = Probe(connection_name="x", host="h", database="d", user="u", schema="s")
    with pytest.raises(LookupError, match="probe"):
        await client.create_connection(with_db=True)
    assert {"conninfo", "kwargs", "check", "min_size", "max_size", "timeout"} <= set(seen)
    assert seen["check"] == AsyncConnectionPool.check_connection
    assert "options='-c search_path=s'" in seen["conninfo"] or "search_path=s" in seen["conninfo"]
