"""Tortoise ``engine`` module for SQLite files, on a pool of aiosqlite connections.

The path names the backend as Tortoise's own ``tortoise.backends.sqlite`` does: Tortoise's
migration executor picks the SQLite schema editor (table rebuilds for ALTERs SQLite lacks)
from the client class's ``__module__``. ``install_regexp_functions`` picks the client with
REGEXP support, as Tortoise's own ``get_client_class`` does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import sqlite3
from typing import Any

from tortoise.backends.base.client import (
    Capabilities,
    ConnectionWrapper,
    PoolConnectionWrapper,
    TransactionContext,
)
from tortoise.backends.sqlite.client import (
    SqliteClient,
    SqliteClientWithRegexpSupport,
    SqliteTransactionWrapper,
)
from tortoise.contrib.sqlite.regex import install_regexp_functions

from poolbridge.adapters._engine_holder import EngineHolder
from poolbridge.adapters.tortoise._tx import GuardedTransactionContext
from poolbridge.adapters.tortoise.backends import OneLoopClient, TortoiseBinding
from poolbridge.adapters.tortoise.backends._engine import EngineFacade, binding_of
from poolbridge.pool.hooks import ConnectionEvent, Hooks

__all__ = [
    "SqliteEngineClient",
    "SqliteEngineClientWithRegexpSupport",
    "client_class",
    "get_client_class",
]


class _SqliteFacade(EngineFacade):
    """Tortoise's SQLite executor reads rows by column name: every connection it gets
    returns sqlite3.Row rows (what Tortoise sets on its single connection)."""

    __slots__ = ()

    async def acquire(self) -> Any:
        conn = await self.engine.getconn()
        conn.row_factory = sqlite3.Row
        return conn


class SqliteEngineClient(OneLoopClient, SqliteClient):
    """Tortoise's SQLite client on a pool of aiosqlite connections (file databases).

    Tortoise's own client is one connection behind a lock; this one takes connections from
    the engine for queries (PoolConnectionWrapper) and transactions
    (a TransactionContextPooled, guarded against cancellation as in ``_tx``,
    around Tortoise's SqliteTransactionWrapper, which works on whatever connection it is
    given). Tortoise's PRAGMAs (WAL, foreign keys...) are applied
    to every connection.
    """

    def __init__(self, *, poolbridge: TortoiseBinding, file_path: str, **kwargs: Any) -> None:
        super().__init__(file_path, **kwargs)
        config = poolbridge.engine_config
        pragmas = {str(k): str(v) for k, v in self.pragmas.items()}
        engine_config = dataclasses.replace(
            config,
            session={**pragmas, **config.session},
            driver_options={"isolation_level": None, **config.driver_options},
        )
        self.poolbridge = EngineHolder(
            engine_config, "aiosqlite", adapter="tortoise", hooks=poolbridge.hooks
        )
        self._pool: _SqliteFacade | None = None
        self._pool_init_lock = asyncio.Lock()

    async def create_connection(self, with_db: bool) -> None:
        if self._pool is None:
            self._pool = _SqliteFacade(await self.poolbridge.open())
            await self._post_connect()

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.engine.close()

    def acquire_connection(self) -> ConnectionWrapper[Any]:
        # same interface (async with -> connection); Tortoise's annotation is narrower
        return PoolConnectionWrapper(self, self._pool_init_lock)  # type: ignore[return-value]

    def _in_transaction(self) -> TransactionContext:
        return GuardedTransactionContext(SqliteTransactionWrapper(self), self._pool_init_lock)


class SqliteEngineClientWithRegexpSupport(SqliteEngineClient):
    """``install_regexp_functions``: REGEXP on every pooled connection, and the capabilities
    of Tortoise's SqliteClientWithRegexpSupport."""

    capabilities: Capabilities = SqliteClientWithRegexpSupport.capabilities

    def __init__(self, *, poolbridge: TortoiseBinding, file_path: str, **kwargs: Any) -> None:
        user_hooks = poolbridge.hooks or Hooks()
        user_on_connect = user_hooks.on_connect

        async def on_connect(event: ConnectionEvent) -> None:
            await install_regexp_functions(event.connection)
            if user_on_connect is not None:
                result = user_on_connect(event)
                if inspect.isawaitable(result):
                    await result

        hooks = dataclasses.replace(user_hooks, on_connect=on_connect)
        binding = dataclasses.replace(poolbridge, hooks=hooks)
        super().__init__(poolbridge=binding, file_path=file_path, **kwargs)


client_class = SqliteEngineClient


def get_client_class(db_info: dict[str, Any]) -> type[SqliteEngineClient]:
    """Called by Tortoise with the connection dict."""
    binding_of(db_info)
    if db_info.get("credentials", {}).get("install_regexp_functions"):
        return SqliteEngineClientWithRegexpSupport
    return SqliteEngineClient
