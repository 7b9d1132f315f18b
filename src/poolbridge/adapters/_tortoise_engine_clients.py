"""Tortoise backend clients whose pool is poolbridge's engine (asyncpg and MySQL backends).

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

import dataclasses
from datetime import datetime
from typing import Any

import asyncpg
from tortoise.backends.asyncpg.client import AsyncpgDBClient
from tortoise.backends.mysql import client as tortoise_mysql
from tortoise.backends.mysql.client import MySQLClient
from tortoise.exceptions import ConfigurationError, DBConnectionError
from tortoise.timezone import get_default_timezone, get_use_tz

from ..core.engine import Engine
from ._engine_holder import EngineHolder
from ._tortoise_client import TortoiseBinding

__all__ = ["CLOSE_TIMEOUT", "AsyncpgEngineClient", "EngineFacade", "MySQLEngineClient"]

#: seconds Tortoise's own close waits for checked-out connections (as its asyncpg client)
CLOSE_TIMEOUT = 10.0


class EngineFacade:
    """What Tortoise sees as ``client._pool``: ``acquire()`` and ``release(conn)``."""

    __slots__ = ("engine",)

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def acquire(self) -> Any:
        return await self.engine.getconn()

    async def release(self, conn: Any) -> None:
        await self.engine.putconn(conn)

    def __repr__(self) -> str:
        return repr(self.engine)


class AsyncpgEngineClient(AsyncpgDBClient):
    """Tortoise's asyncpg client on poolbridge's engine."""

    def __init__(self, *, poolbridge: TortoiseBinding, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.poolbridge = EngineHolder(
            poolbridge.engine_config, "asyncpg", adapter="tortoise", hooks=poolbridge.hooks
        )

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

    async def _close(self) -> None:
        pool: Any = self._pool
        if isinstance(pool, EngineFacade):
            self._pool = None
            await pool.engine.close(CLOSE_TIMEOUT)
            return
        await super()._close()

    async def _expire_connections(self) -> None:
        pool: Any = self._pool
        if isinstance(pool, EngineFacade):
            # replace every connection: new ones from a fresh engine, old ones after use
            old = pool.engine
            pool.engine = await self.poolbridge.open()
            await old.close(CLOSE_TIMEOUT)
            return
        await super()._expire_connections()


class MySQLEngineClient(MySQLClient):
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
        self._pool = EngineFacade(engine)  # type: ignore[assignment]
        await self._post_connect()

    async def _close(self) -> None:
        pool: Any = self._pool
        if isinstance(pool, EngineFacade):
            self._pool = None
            await pool.engine.close(CLOSE_TIMEOUT)
            return
        await super()._close()

    async def _expire_connections(self) -> None:
        pool: Any = self._pool
        if isinstance(pool, EngineFacade):
            old = pool.engine
            pool.engine = await self.poolbridge.open()
            await old.close(CLOSE_TIMEOUT)
            return
        await super()._expire_connections()


def _tz_offset() -> str:
    offset = datetime.now(tz=get_default_timezone()).utcoffset()
    total = int(offset.total_seconds()) if offset is not None else 0
    return f"{total // 3600:+d}:{abs(total) % 3600 // 60:02d}"
