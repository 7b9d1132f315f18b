"""peewee-async pool backends on poolbridge, and the database classes that select them.

peewee-async 2.x reads ``pool_backend_cls`` (a class attribute) in ``Database.init()`` and
builds the backend with ``database=`` plus the merged ``pool_params`` (the database's
connect kwargs included). poolbridge's database classes subclass peewee-async's and name
poolbridge's backends; the config, driver and hooks reach the backend as
``pool_params["poolbridge"]`` (a :class:`PeeweeBinding`).

- :class:`EnginePoolBackend` (aiopg, aiomysql, aiosqlite): poolbridge's engine is the pool,
  seen through :class:`~._pool_view.EnginePoolView` (the native pool's attributes).
- ``PsycopgHookedBackend`` (psycopg, in ``_psycopg`` so that this module does not
  import psycopg): psycopg_pool honours the knobs; poolbridge adds its errors, hooks and
  stats, and keeps the password out of the conninfo.

What stays as stock: every connect kwarg reaches the driver or is refused by name
(:mod:`._stock`); using the database after ``aio_close()`` raises what the stock backend
raises; ``aio_close()`` returns at once; the synchronous connection (``db.connect()``)
uses the config's URL, credentials and TLS.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import inspect
from typing import Any, ClassVar

import peewee_async
from peewee_async.pool import PoolBackend

from poolbridge.adapters._engine_holder import EngineHolder, load_shim
from poolbridge.adapters.peewee_async._pool_view import pool_view
from poolbridge.adapters.peewee_async._stock import driver_kwargs
from poolbridge.config.model import PoolConfig
from poolbridge.drivers.base import mysql_session_sql
from poolbridge.errors import PoolBridgeError, PoolClosed
from poolbridge.pool.hooks import Hooks

__all__ = [
    "EnginePoolBackend",
    "HolderBackend",
    "MySQLDatabase",
    "PeeweeBinding",
    "PoolClosedError",
    "PostgresqlDatabase",
    "SqliteDatabase",
    "binding_from",
    "sync_connect_params",
]


class PoolClosedError(RuntimeError, PoolClosed):
    """The database was used after ``aio_close()``: a RuntimeError, as aiopg's, aiomysql's
    and peewee-async's SQLite pools raise, and poolbridge's PoolClosed. peewee's exception
    wrapper maps neither ``RuntimeError`` nor this name, so the caller gets it as is, like
    the stock RuntimeError."""


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
    binding: PeeweeBinding
    #: (poolbridge error, the class raised in its place): what the stock backend raises
    error_map: ClassVar[tuple[tuple[type[BaseException], type[BaseException]], ...]] = ()

    def has_acquired_connections(self) -> bool:
        return bool(self.holder.recorder.used > 0)

    async def acquire(self) -> Any:
        try:
            if self.pool is None:
                await self.connect()
            assert self.pool is not None
            return await self.pool.getconn()
        except PoolBridgeError as exc:
            for ours, stock in self.error_map:
                if isinstance(exc, ours) and not isinstance(exc, stock):
                    raise stock(*exc.args).with_traceback(exc.__traceback__) from exc.__cause__
            raise

    async def release(self, conn: Any) -> None:
        assert self.pool is not None, "Pool is not connected"
        await self.pool.putconn(conn)

    async def close(self) -> None:
        """``aio_close()``: at once, as the stock backend (see the subclasses)."""
        raise NotImplementedError

    async def drain_close(self, timeout: float | None) -> None:
        """The uniform handle's close: drain up to ``timeout`` s (None:
        ``acquire_timeout``), then terminate what is left."""
        await self.holder.close(timeout)


class EnginePoolBackend(HolderBackend):
    """A peewee-async pool backend whose pool is poolbridge's engine."""

    error_map = ((PoolClosed, PoolClosedError),)

    def __init__(self, *, database: str, **kwargs: Any) -> None:
        binding = binding_from(kwargs)
        self.binding = binding
        stock = driver_kwargs(binding.driver, binding.config, database, kwargs)
        if binding.driver == "aiosqlite":
            stock["isolation_level"] = None  # peewee-async issues BEGIN itself
        config = binding.config
        # the user's URL keys and driver_options win over the defaults peewee adds
        stock = {k: v for k, v in stock.items() if k not in config.database_url.query}
        if stock:
            config = dataclasses.replace(config, driver_options={**stock, **config.driver_options})
        self.required_modules = [binding.driver]
        super().__init__(database=database)
        self.holder = EngineHolder(
            config, binding.driver, adapter="peewee_async", hooks=binding.hooks
        )

    @property
    def is_connected(self) -> bool:
        return self.pool is not None and not self.pool.closed

    async def create(self) -> None:
        holder = self.holder
        engine = await holder.open()
        shim: Any = load_shim(holder.driver)
        kwargs = shim.connect_kwargs(holder.config)
        hooks = self.binding.hooks
        self.pool = pool_view(
            engine, holder.driver, kwargs, on_connect=None if hooks is None else hooks.on_connect
        )

    async def close(self) -> None:
        """Close every connection at once, those in use too (aiopg's and aiomysql's
        ``terminate()``, which peewee-async's backends call)."""
        await self.holder.close(0)


# -- the synchronous connection -----------------------------------------------------------

#: connect kwargs of the async drivers that their sync counterparts (psycopg2, pymysql)
#: do not take; the database name comes from peewee (``database=self.database``)
_ASYNC_ONLY = {
    "aiopg": ("dbname", "timeout", "enable_json", "enable_hstore", "enable_uuid", "echo"),
    "aiomysql": ("db", "database", "autocommit", "echo", "loop"),
    "psycopg": ("dbname",),
}


def sync_password(config: PoolConfig) -> str | None:
    """``config.get_password()`` from synchronous code (peewee's ``connect()``): a
    coroutine provider runs on a loop of its own (in a thread when one is running here)."""
    pw = config.password
    if pw is None:
        return config.database_url.password
    if isinstance(pw, str):
        return pw
    result = pw()
    if not inspect.isawaitable(result):
        return str(result)
    awaitable = result

    async def wait() -> str:
        return str(await awaitable)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(wait())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, wait()).result()


def sync_connect_params(driver: str, config: PoolConfig) -> dict[str, Any]:
    """The sync driver's connect kwargs for ``config``: the async connection's URL,
    credentials, TLS and libpq options, password resolved now."""
    if driver == "psycopg":
        from poolbridge.drivers.psycopg.conninfo import conninfo_kwargs

        kw = conninfo_kwargs(config, sync_password(config))
    else:
        shim: Any = load_shim(driver)
        kw = shim.connect_kwargs(config)
        password = sync_password(config)
        if password is not None:
            kw["password"] = password
    for key in _ASYNC_ONLY[driver]:
        kw.pop(key, None)
    return kw


def _connect_from_config(db: Any, connect: Any) -> Any:
    """Run peewee's ``_connect()`` with the config's parameters under the database's own
    (peewee calls it holding ``db._lock``; the params are not kept on the object)."""
    backend = db.pool_backend
    saved = db.connect_params
    db.connect_params = {
        **sync_connect_params(backend.binding.driver, backend.holder.config),
        **saved,
    }
    try:
        return connect()
    finally:
        db.connect_params = saved


class PostgresqlDatabase(peewee_async.PostgresqlDatabase):  # type: ignore[misc]
    """peewee-async's aiopg database on poolbridge's engine."""

    pool_backend_cls = EnginePoolBackend

    def _connect(self) -> Any:
        return _connect_from_config(self, super()._connect)


class MySQLDatabase(peewee_async.MySQLDatabase):  # type: ignore[misc]
    """peewee-async's aiomysql database on poolbridge's engine."""

    pool_backend_cls = EnginePoolBackend

    def _connect(self) -> Any:
        conn = _connect_from_config(self, super()._connect)
        # the session settings the engine's connections get (pymysql has no startup
        # parameters: SET statements, as the aiomysql shim sends them)
        statements = mysql_session_sql(self.pool_backend.holder.config)
        try:
            with conn.cursor() as cur:
                for sql in statements:
                    cur.execute(sql)
        except BaseException:
            conn.close()
            raise
        return conn


class SqliteDatabase(peewee_async.SqliteDatabase):  # type: ignore[misc]
    """peewee-async's SQLite database on poolbridge's engine (a real pool of aiosqlite
    connections; peewee-async's own backend opens one per acquire). The synchronous
    connection opens the same file (peewee's ``database``)."""

    pool_backend_cls = EnginePoolBackend
