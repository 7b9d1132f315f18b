"""peewee-async pool backends on poolbridge, and the database classes that select them.

peewee-async 2.x reads ``pool_backend_cls`` (a class attribute) in ``Database.init()`` and
builds the backend with ``database=`` plus the merged ``pool_params``. poolbridge's database
classes subclass peewee-async's and name poolbridge's backends; the config, driver and
hooks reach the backend as ``pool_params["poolbridge"]`` (a :class:`PeeweeBinding`).

- :class:`EnginePoolBackend` (aiopg, aiomysql, aiosqlite): poolbridge's engine is the pool.
  The native aiopg/aiomysql pools wait forever when exhausted, recycle by idle time, have
  no hooks or stats; the engine honours every knob.
- ``PsycopgHookedBackend`` (psycopg, in ``_peewee_psycopg`` so that this module does not
  import psycopg): psycopg_pool honours the knobs; poolbridge adds its errors, hooks and
  stats, and keeps the password out of the conninfo.

``aio_close()`` on these backends drains checked-out connections for up to
``close_timeout`` seconds before terminating them (peewee-async's own backends terminate
at once).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import peewee_async
from peewee_async.pool import PoolBackend

from poolbridge.adapters._engine_holder import EngineHolder
from poolbridge.config.model import PoolConfig
from poolbridge.pool.hooks import Hooks

__all__ = [
    "EnginePoolBackend",
    "HolderBackend",
    "MySQLDatabase",
    "PeeweeBinding",
    "PostgresqlDatabase",
    "SqliteDatabase",
    "binding_from",
]

#: pool_params peewee-async's databases set that are really driver connect options
_DRIVER_KEYS = ("enable_json", "enable_hstore", "enable_uuid", "autocommit")


@dataclasses.dataclass(eq=False)
class PeeweeBinding:
    """What a poolbridge backend needs; passed as ``pool_params["poolbridge"]``."""

    config: PoolConfig
    driver: str
    hooks: Hooks | None = None

    def __repr__(self) -> str:
        return f"<poolbridge pool {self.config.name!r} driver={self.driver}>"


def binding_from(kwargs: dict[str, Any]) -> PeeweeBinding:
    binding = kwargs.pop("poolbridge", None)
    if not isinstance(binding, PeeweeBinding):
        raise TypeError(
            "a poolbridge peewee-async database needs pool_params=poolbridge.adapters."
            "peewee_async.pool_params(config) (or use database(config))"
        )
    return binding


class HolderBackend(PoolBackend):  # type: ignore[misc]
    """What poolbridge's peewee-async backends share: ``self.pool`` has ``getconn()`` /
    ``putconn()`` and ``self.holder`` (EngineHolder or PsycopgHolder) the stats and close."""

    holder: Any

    def has_acquired_connections(self) -> bool:
        return bool(self.holder.recorder.used > 0)

    async def acquire(self) -> Any:
        if self.pool is None:
            await self.connect()
        assert self.pool is not None
        return await self.pool.getconn()

    async def release(self, conn: Any) -> None:
        assert self.pool is not None, "Pool is not connected"
        await self.pool.putconn(conn)

    async def close(self, timeout: float | None = None) -> None:
        """Drain up to ``timeout`` s (None: ``acquire_timeout``), then terminate what is left."""
        await self.holder.close(timeout)


class EnginePoolBackend(HolderBackend):
    """A peewee-async pool backend whose pool is poolbridge's engine."""

    def __init__(self, *, database: str, **kwargs: Any) -> None:
        binding = binding_from(kwargs)
        driver_opts = {k: kwargs[k] for k in _DRIVER_KEYS if k in kwargs}
        if binding.driver == "aiosqlite":
            driver_opts = {"isolation_level": None}  # peewee-async issues BEGIN itself
        elif binding.driver != "aiomysql":
            driver_opts.pop("autocommit", None)
        config = binding.config
        if driver_opts:
            config = dataclasses.replace(
                config, driver_options={**driver_opts, **config.driver_options}
            )
        self.required_modules = [binding.driver]
        super().__init__(database=database)
        self.holder = EngineHolder(
            config, binding.driver, adapter="peewee_async", hooks=binding.hooks
        )

    @property
    def is_connected(self) -> bool:
        return self.pool is not None and not self.pool.closed

    async def create(self) -> None:
        self.pool = await self.holder.open()


class PostgresqlDatabase(peewee_async.PostgresqlDatabase):  # type: ignore[misc]
    """peewee-async's aiopg database on poolbridge's engine."""

    pool_backend_cls = EnginePoolBackend


class MySQLDatabase(peewee_async.MySQLDatabase):  # type: ignore[misc]
    """peewee-async's aiomysql database on poolbridge's engine."""

    pool_backend_cls = EnginePoolBackend


class SqliteDatabase(peewee_async.SqliteDatabase):  # type: ignore[misc]
    """peewee-async's SQLite database on poolbridge's engine (a real pool of aiosqlite
    connections; peewee-async's own backend opens one per acquire)."""

    pool_backend_cls = EnginePoolBackend
