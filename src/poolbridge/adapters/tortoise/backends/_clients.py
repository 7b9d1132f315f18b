"""Tortoise backend clients whose pool is poolbridge's engine (asyncpg, MySQL, SQLite file).

Tortoise's asyncpg and MySQL clients use the driver's pool, which waits forever when
exhausted and has no lifetime by age, pre-ping, warm-up, hooks or stats. These subclasses
keep everything Tortoise does (SQL, executors, transactions, exception translation) and
replace only the pool: ``client._pool`` becomes an :class:`EngineFacade` whose
``acquire()``/``release()`` — the two calls Tortoise makes on a pool — are the engine's
``getconn()``/``putconn()``. An exhausted pool therefore raises
:class:`poolbridge.PoolTimeout` after ``acquire_timeout`` from every Tortoise entry point
(model queries, ``in_transaction()``, ``connection.execute_query()``).

``create_connection(with_db=False)`` (Tortoise's ``db_create``/``db_delete`` path) keeps the
native driver pool: it is a short maintenance connection to the server's default database.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from datetime import datetime
from typing import Any, cast

import asyncpg
from tortoise.backends.asyncpg.client import AsyncpgDBClient
from tortoise.backends.base.client import (
    ConnectionWrapper,
    PoolConnectionWrapper,
    TransactionContext,
)
from tortoise.backends.mysql import client as tortoise_mysql
from tortoise.backends.mysql.client import MySQLClient
from tortoise.backends.sqlite.client import SqliteClient, SqliteTransactionWrapper
from tortoise.exceptions import ConfigurationError, DBConnectionError
from tortoise.timezone import get_default_timezone, get_use_tz

from poolbridge.adapters._engine_holder import EngineHolder
from poolbridge.adapters.tortoise._tx import GuardedTransactionContext, guarded
from poolbridge.adapters.tortoise.backends import ConfigPassword, OneLoopClient, TortoiseBinding
from poolbridge.engine.checkout import Engine

__all__ = [
    "AsyncpgEngineClient",
    "EngineFacade",
    "MySQLEngineClient",
    "SqliteEngineClient",
]


class EngineFacade:
    """What Tortoise sees as ``client._pool``: ``acquire()`` and ``release(conn)``."""

    __slots__ = ("engine",)

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def acquire(self) -> Any:
        return await self.engine.getconn()

    async def release(self, conn: Any) -> None:
        await self.engine.putconn(conn)

    async def release_dirty(self, conn: Any) -> None:
        """Give back a connection whose transaction state is unknown (an interrupted
        BEGIN): the engine rolls it back whatever the driver believes, or replaces it."""
        await self.engine.putconn(conn, _state_unknown=True)

    def __repr__(self) -> str:
        return repr(self.engine)


class _EngineConnectionWrapper(PoolConnectionWrapper[Any]):
    """Tortoise's pool wrapper, except that a block that raised (a statement cancelled
    mid-way, an error) gives the connection back as dirty, as the engine's own acquire()
    does: Tortoise releases it as idle whatever happened, while the driver may still be
    mid-exchange with the server (an asyncpg statement cancelled between its Parse and its
    Sync). The engine rolls it back, which waits for that exchange to end, or replaces it."""

    __slots__ = ()

    async def __aenter__(self) -> Any:
        pool: Any = self.client._pool
        if not isinstance(pool, EngineFacade):  # not connected yet: Tortoise's path opens it
            return await super().__aenter__()
        self.connection = conn = await pool.engine.getconn()
        return conn

    async def __aexit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        pool: Any = self.client._pool
        if isinstance(pool, EngineFacade):
            # straight to the engine: one call per side instead of Tortoise's wrapper,
            # the facade and the engine (this runs for every query Tortoise sends)
            await pool.engine.putconn(self.connection, _state_unknown=exc_val is not None)
        else:
            await super().__aexit__(exc_type, exc_val, exc_tb)


class _EngineSwap(OneLoopClient):
    """``_close`` / ``_expire_connections`` of a Tortoise client whose ``_pool`` is an
    :class:`EngineFacade` (else Tortoise's own); mixed in before Tortoise's client class."""

    _pool: Any
    poolbridge: EngineHolder

    async def _close(self) -> None:
        pool: Any = self._pool
        if isinstance(pool, EngineFacade):
            self._pool = None
            await pool.engine.close()
            return
        await super()._close()  # type: ignore[misc]

    def acquire_connection(self) -> Any:
        if isinstance(self._pool, EngineFacade):  # connected: skip building Tortoise's own
            return _EngineConnectionWrapper(self, self._pool_init_lock)  # type: ignore[arg-type,attr-defined]
        wrapper = super().acquire_connection()  # type: ignore[misc]
        if type(wrapper) is PoolConnectionWrapper:
            return _EngineConnectionWrapper(self, wrapper._pool_init_lock)  # type: ignore[arg-type]
        return wrapper

    def _in_transaction(self) -> TransactionContext:
        # Tortoise's pooled context loses the connection when BEGIN is cancelled
        return guarded(super()._in_transaction())  # type: ignore[misc]

    async def _expire_connections(self) -> None:
        pool: Any = self._pool
        if isinstance(pool, EngineFacade):
            # replace every connection: idle ones now, checked-out ones after use
            pool.engine.expire_all()
            return
        await super()._expire_connections()  # type: ignore[misc]


class AsyncpgEngineClient(_EngineSwap, AsyncpgDBClient):
    """Tortoise's asyncpg client on poolbridge's engine."""

    def __init__(self, *, poolbridge: TortoiseBinding, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.poolbridge = EngineHolder(
            poolbridge.engine_config, "asyncpg", adapter="tortoise", hooks=poolbridge.hooks
        )
        if isinstance(self.password, ConfigPassword):  # follow rotate(password=)
            self.password = cast(Any, ConfigPassword(self.poolbridge))

    async def create_connection(self, with_db: bool) -> None:
        if not with_db:
            await super().create_connection(with_db)
            return
        try:
            engine = await self.poolbridge.open()
        except asyncpg.InvalidCatalogNameError as exc:
            raise DBConnectionError(
                f"Can't establish connection to database {self.database}"
            ) from exc
        self._pool = EngineFacade(engine)
        await self._post_connect()


class MySQLEngineClient(_EngineSwap, MySQLClient):
    """Tortoise's MySQL client on poolbridge's engine, using the driver Tortoise imported."""

    def __init__(self, *, poolbridge: TortoiseBinding, password: Any = None, **kwargs: Any):
        imported = vars(tortoise_mysql)["mysql"].__name__
        if poolbridge.driver != imported:
            # Tortoise's error translation and savepoints use `imported`'s classes
            raise ConfigurationError(
                f"Tortoise's MySQL backend imported {imported}; a poolbridge client cannot "
                f"run it on {poolbridge.driver} (set driver={imported!r} or leave it unset)"
            )
        super().__init__(password=password, **kwargs)
        self.poolbridge = EngineHolder(
            poolbridge.engine_config, poolbridge.driver, adapter="tortoise", hooks=poolbridge.hooks
        )

    async def create_connection(self, with_db: bool) -> None:
        if not with_db:
            # the native path needs the password as a string, only for this call
            provider = self.password
            self.password = await self.poolbridge.config.get_password() or ""
            try:
                await super().create_connection(with_db)
            finally:
                self.password = provider
            return
        config = self.poolbridge.config
        if get_use_tz() and "time_zone" not in config.session:
            # Tortoise sets this on its first connection only; poolbridge on every one
            config = dataclasses.replace(
                config, session={**config.session, "time_zone": _tz_offset()}
            )
        try:
            engine = await self.poolbridge.open(config)
        except vars(tortoise_mysql)["errors"].OperationalError as exc:
            raise DBConnectionError(f"Can't connect to MySQL server: {exc}") from exc
        self._pool = EngineFacade(engine)
        await self._post_connect()


def _tz_offset() -> str:
    offset = datetime.now(tz=get_default_timezone()).utcoffset()
    total = int(offset.total_seconds()) if offset is not None else 0
    return f"{total // 3600:+d}:{abs(total) % 3600 // 60:02d}"


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
    (a TransactionContextPooled, guarded against cancellation as in ``_tortoise_tx``,
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
