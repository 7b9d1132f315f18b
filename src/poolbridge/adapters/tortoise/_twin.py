"""Tortoise's stock twin for the conformance suite's ``parity_*`` rows.

The stock side is Tortoise's own client in a TortoiseContext of its own, configured by hand
with Tortoise's native connection dict (``engine`` + ``credentials`` parsed from the URL);
poolbridge's side is :func:`~poolbridge.adapters.tortoise.tortoise_config` in the same kind
of context, the stock keys given as URL query keys (how a poolbridge user passes them).
Both connect, query, hold and close through the client's own API.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

from poolbridge.adapters._rows import first_value
from poolbridge.adapters.base import StackSide, StockTwin, TwinSpec

__all__ = ["TortoiseTwin"]

#: an importable module without models: the app Tortoise needs to start
_NO_MODELS = "poolbridge.adapters.tortoise.backends"
_ENGINES = {
    "asyncpg": "tortoise.backends.asyncpg",
    "psycopg": "tortoise.backends.psycopg",
    "aiomysql": "tortoise.backends.mysql",
    "asyncmy": "tortoise.backends.mysql",
    "aiosqlite": "tortoise.backends.sqlite",
}


def _stock_connection(spec: TwinSpec) -> dict[str, Any]:
    """Tortoise's connection dict written by hand from the URL (no poolbridge code)."""
    parts = urlsplit(spec.url)
    creds: dict[str, Any]
    if spec.driver == "aiosqlite":
        creds = {"file_path": spec.url.split("///", 1)[1].split("?", 1)[0]}
    else:
        creds = {
            "host": parts.hostname,
            "port": parts.port,
            "user": unquote(parts.username or ""),
            "password": unquote(parts.password or ""),
            "database": parts.path.lstrip("/"),
            "minsize": spec.min_size,
            "maxsize": spec.max_size,
        }
        if spec.driver == "psycopg":
            creds["timeout"] = spec.timeout  # psycopg_pool's wait for a connection
        if spec.ssl is not None:
            creds["ssl"] = spec.ssl
    creds.update(spec.keys)
    return {"engine": _ENGINES[spec.driver], "credentials": creds}


class TortoiseSide(StackSide):
    """One Tortoise connection named ``parity`` in a TortoiseContext of its own."""

    def __init__(self, connection: Mapping[str, Any]) -> None:
        self._connection = connection
        self._ctx: Any = None

    async def _client(self) -> Any:
        if self._ctx is None:
            from tortoise.context import TortoiseContext

            self._ctx = TortoiseContext()
            config = {
                "connections": {"parity": dict(self._connection)},
                "apps": {"pbparity": {"models": [_NO_MODELS], "default_connection": "parity"}},
            }
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", ".*has no models", RuntimeWarning)
                await self._ctx.init(config=config)
        with self._ctx:
            return self._ctx.connections.get("parity")

    async def connect(self) -> None:
        client = await self._client()
        with self._ctx:
            await client.create_connection(with_db=True)

    async def scalar(self, sql: str) -> Any:
        client = await self._client()
        with self._ctx:
            _, rows = await client.execute_query(sql)
        return first_value(rows[0]) if rows else None

    def hold(self) -> AbstractAsyncContextManager[Any]:
        @asynccontextmanager
        async def held() -> Any:
            client = await self._client()
            with self._ctx:
                async with client.acquire_connection() as conn:
                    yield conn

        return held()

    async def close(self) -> None:
        if self._ctx is not None:
            with self._ctx:
                await self._ctx.close_connections()

    def identity(self) -> Mapping[str, Any]:
        from tortoise.migrations.executor import MigrationExecutor

        client = self._ctx.connections.get("parity")
        editor = MigrationExecutor(client, {})._schema_editor(atomic=False, collect_sql=True)
        return {
            "schema editor": type(editor),
            "dialect": client.capabilities.dialect,
            "capabilities": dict(vars(client.capabilities)),
            "executor": client.executor_class,
            "schema generator": client.schema_generator,
            "query class": client.query_class,
        }

    async def ddl(self, table: str) -> list[str]:
        """The SQL of Tortoise's migration operations on a model (collected, not run)."""
        from tortoise import fields
        from tortoise.migrations.executor import MigrationExecutor
        from tortoise.migrations.migration import Migration
        from tortoise.migrations.operations import (
            AddField,
            AlterField,
            CreateModel,
            DeleteModel,
            RemoveField,
            RenameField,
            RenameModel,
        )
        from tortoise.migrations.schema_generator.state import State
        from tortoise.migrations.schema_generator.state_apps import StateApps

        client = await self._client()
        first, second = f"{table.capitalize()}", f"{table.capitalize()}b"
        migration = Migration("0001_parity", "pbparity")
        migration.operations = [
            CreateModel(
                first,
                [
                    ("id", fields.IntField(primary_key=True)),
                    ("name", fields.CharField(max_length=20)),
                ],
            ),
            AddField(first, "size", fields.IntField(default=0)),
            AlterField(first, "name", fields.CharField(max_length=40)),
            RenameField(first, "size", "weight"),
            RemoveField(first, "weight"),
            RenameModel(first, second),
            DeleteModel(second),
        ]
        with self._ctx:
            editor = MigrationExecutor(client, {})._schema_editor(atomic=False, collect_sql=True)
            apps = StateApps(default_connections={"pbparity": client.connection_name})
            await migration.apply(
                State(models={}, apps=apps), schema_editor=editor, collect_sql=True
            )
        return list(editor.collected_sql)


class TortoiseTwin(StockTwin):
    """Tortoise built by hand (stock) and through ``tortoise_config`` (poolbridge)."""

    async def stock(self, spec: TwinSpec) -> StackSide:
        return TortoiseSide(_stock_connection(spec))

    async def ours(self, spec: TwinSpec) -> StackSide:
        from poolbridge.adapters.tortoise import tortoise_config

        config = spec.config()
        if spec.keys:
            sep = "&" if "?" in spec.url else "?"
            config = spec.config(url=spec.url + sep + urlencode(dict(spec.keys)))
        connection = tortoise_config(config)["connections"]["default"]
        return TortoiseSide(connection)

    def session_keys(self, backend: str, driver: str) -> Mapping[str, Any]:
        if backend == "postgresql":
            return {"application_name": "pb_parity_app", "schema": "pb_parity_schema"}
        if backend == "mysql":
            return {"charset": "latin1", "sql_mode": "ANSI_QUOTES"}
        return {"journal_mode": "DELETE"}

    def closed_rows(self, backend: str, driver: str) -> Mapping[str, str]:
        return {
            "parity_sync": "Tortoise has no synchronous connection",
            "parity_pool": "Tortoise exposes no pool object: a client's pool is private "
            "(``_pool``), of the driver's own type",
        }
