"""peewee-async adapter: one PoolConfig -> a configured peewee-async 2.x database.

Usage::

    from poolbridge.adapters.peewee_async import database

    db = database(config)                # PostgresqlDatabase (aiopg), Psycopg3Database,
                                         # MySQLDatabase (aiomysql) or SqliteDatabase
    class Item(peewee_async.AioModel):
        class Meta:
            database = db

    await Item.aio_create(name="x"); await db.aio_execute(Item.select())
    handle_of(db).stats()                # the uniform handle: stats(), rotate(), close()

Or build the database yourself with poolbridge's classes and :func:`native_arguments`
(``database`` and ``pool_params``; :func:`pool_params` gives the latter alone)::

    from poolbridge.adapters.peewee_async import PostgresqlDatabase, native_arguments
    db = PostgresqlDatabase(**native_arguments(config))

``pool = await open_pool(config)`` opens the uniform handle directly (``pool.native`` is the
database).

In peewee-async 2.x the database object took the 0.x ``Manager``'s role (see
docs/adapters/peewee_async.md for the migration mapping). poolbridge's database classes
subclass peewee-async's and set ``pool_backend_cls`` to a backend on poolbridge's pool
engine (aiopg, aiomysql, aiosqlite) or on a hooked psycopg_pool (psycopg), so every
peewee-async entry point (``AioModel.aio_*``, ``db.aio_execute``, ``db.aio_connection()``,
``db.aio_atomic()``) gets acquire timeouts, lifetime, hooks and stats. peewee-async has no
asyncpg or asyncmy backend: those drivers are refused with UnsupportedOptionError.
Importing this module does not import peewee-async.
"""

from __future__ import annotations

import contextlib
import ssl as _ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, ClassVar

from poolbridge.adapters._engine_backed import engine_under_orm
from poolbridge.adapters._glue import aiopg_real_error, open_or_close, ping_select_one
from poolbridge.adapters._ha import ha_rows
from poolbridge.adapters._rows import first_value
from poolbridge.adapters.base import (
    Adapter,
    EntryPoint,
    ScalarRunner,
    Translation,
    as_config,
    enforce,
    opener,
    require_modules,
)
from poolbridge.config.model import PasswordProvider, PoolConfig
from poolbridge.drivers.base import SQLITE_REFUSED, libpq_options_conflicts
from poolbridge.drivers.psycopg.conninfo import psycopg_pool_under_orm
from poolbridge.errors import PoolClosed, UnsupportedOptionError
from poolbridge.pool.handle import Pool, PoolOpener
from poolbridge.pool.hooks import Hooks

if TYPE_CHECKING:
    from poolbridge.adapters.peewee_async._backend import (
        MySQLDatabase,
        PostgresqlDatabase,
        SqliteDatabase,
    )
    from poolbridge.adapters.peewee_async._psycopg import Psycopg3Database

__all__ = [
    "MySQLDatabase",
    "PeeweeAsyncAdapter",
    "PeeweePool",
    "PostgresqlDatabase",
    "Psycopg3Database",
    "SqliteDatabase",
    "adapter",
    "database",
    "doc_table",
    "handle_of",
    "native_arguments",
    "open_pool",
    "pool_params",
    "stock_key_table",
]

#: the entry points named after peewee-async's own (docs/adapters/index.md lists them)
ORM_ENTRY_POINTS = (
    "database(config) -> database",
    "pool_params(config)",
    "PostgresqlDatabase / Psycopg3Database / MySQLDatabase / SqliteDatabase",
)
#: how the object the ORM-named entry points give reaches its uniform handle
HANDLE_ACCESS: str | None = "handle_of(db)"

_CLASSES = {
    "aiopg": "PostgresqlDatabase",
    "psycopg": "Psycopg3Database",
    "aiomysql": "MySQLDatabase",
    "aiosqlite": "SqliteDatabase",
}
_ENGINE_DRIVERS = ("aiopg", "aiomysql", "aiosqlite")

ENGINE_EMULATED: dict[str, str] = engine_under_orm(
    "poolbridge's pool engine as peewee-async's pool backend",
    opened="aio_connect()/first use",
    notes={
        "acquire_timeout": " (aiopg/aiomysql pools wait forever)",
        "max_lifetime": " (aiomysql's pool_recycle is idle time)",
    },
)
PSYCOPG_EMULATED: dict[str, str] = psycopg_pool_under_orm(
    "psycopg_pool (hooked) as peewee-async's pool backend",
    notes={"password": " (never formatted into the DSN)"},
)


class PeeweeAsyncAdapter(Adapter):
    """peewee-async >= 2.0 (peewee 4) on aiopg, psycopg, aiomysql and aiosqlite."""

    name = "peewee_async"
    stock_twin_path = "poolbridge.adapters.peewee_async._twin:PeeweeAsyncTwin"
    extra = "peewee"
    drivers: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "postgresql": ("aiopg", "psycopg"),
        "mysql": ("aiomysql",),
        "sqlite": ("aiosqlite",),
    }

    def driver_for(self, config: PoolConfig) -> str:
        wanted = config.driver or config.database_url.driver
        if wanted in ("asyncpg", "asyncmy"):
            use = "aiopg or psycopg" if wanted == "asyncpg" else "aiomysql"
            raise UnsupportedOptionError(
                self.name,
                {
                    "driver": f"peewee-async has no {wanted} backend (its databases run on "
                    f"aiopg, psycopg, aiomysql and aiosqlite): use driver={use}"
                },
            )
        return super().driver_for(config)

    def check_available(self, config: PoolConfig | None = None) -> None:
        modules = ["peewee_async"]
        if config is not None:
            drv = self.driver_for(config)
            modules += ["psycopg", "psycopg_pool"] if drv == "psycopg" else [drv]
        require_modules(self.name, self.extra, *modules)

    def translate(self, config: PoolConfig) -> Translation:
        driver = self.driver_for(config)
        cls = f"poolbridge.adapters.peewee_async.{_CLASSES[driver]}"
        if driver == "psycopg":
            # the user's libpq options are merged with ours; a disagreeing knob is refused
            unsupported: dict[str, str] = libpq_options_conflicts(config)
            if isinstance(config.ssl, _ssl.SSLContext):
                unsupported["ssl"] = "libpq takes sslmode/sslrootcert names, not an SSLContext"
            native: dict[str, Any] = {
                "database_class": cls,
                "pool_backend_cls": "PsycopgHookedBackend",
                "pool": {
                    "min_size": config.min_size,
                    "max_size": config.max_size,
                    "timeout": config.acquire_timeout,
                    "max_waiting": config.max_waiting,
                    "max_lifetime": config.max_lifetime,
                    "max_idle": config.max_idle,
                },
            }
            emulated = dict(PSYCOPG_EMULATED)
            ha_emulated, ha_unsupported = ha_rows(config, "libpq")
        else:
            from poolbridge.adapters._engine_holder import load_shim, shim_unsupported

            unsupported = shim_unsupported(driver, config)
            shim: Any = load_shim(driver)
            native = {
                "database_class": cls,
                "pool_backend_cls": "EnginePoolBackend",
                "connect": shim.connect_kwargs(config),
            }
            emulated = dict(ENGINE_EMULATED)
            ha_emulated, ha_unsupported = ha_rows(config, "engine")
        emulated.update(ha_emulated)
        unsupported.update(ha_unsupported)
        emulated = {k: v for k, v in emulated.items() if k not in unsupported}
        return Translation(native=native, emulated=emulated, unsupported=unsupported)

    async def open(self, config: PoolConfig, hooks: Hooks | None = None) -> PeeweePool:
        db = database(config, hooks=hooks)
        return await open_or_close(handle_of(db), db.aio_connect())

    def closed_requirements(self, backend: str, driver: str) -> Mapping[str, str]:
        return {}

    async def fetch_scalar(self, conn: Any, sql: str) -> Any:
        kind = type(conn).__module__.split(".", 1)[0]
        if kind == "aiosqlite":
            async with conn.execute(sql) as cur:
                return first_value(await cur.fetchone())
        async with conn.cursor() as cur:  # aiopg / aiomysql / psycopg (AsyncClientCursor)
            await aiopg_real_error(cur.execute(sql))
            return await _first(None, cur)

    def entry_points(self, pool: Any) -> Mapping[str, EntryPoint]:
        points = dict(super().entry_points(pool))

        @asynccontextmanager
        async def aio_connection() -> AsyncIterator[ScalarRunner]:
            with _fresh_connection_context():
                async with pool.native.aio_connection() as conn:

                    async def run(sql: str) -> Any:
                        return await self.fetch_scalar(conn, sql)

                    yield run

        @asynccontextmanager
        async def aio_execute() -> AsyncIterator[ScalarRunner]:
            from peewee import SQL

            db = pool.native
            with _fresh_connection_context():
                async with db.aio_connection():

                    async def run(sql: str) -> Any:
                        return await aiopg_real_error(db.aio_execute(SQL(sql), _first))

                    yield run

        @asynccontextmanager
        async def aio_atomic() -> AsyncIterator[ScalarRunner]:
            db = pool.native
            with _fresh_connection_context():
                async with db.aio_atomic():

                    async def run(sql: str) -> Any:
                        return await aiopg_real_error(db.aio_execute_sql(sql, fetch_results=_first))

                    yield run

        points["aio_connection"] = aio_connection
        points["aio_execute"] = aio_execute
        points["aio_atomic"] = aio_atomic
        return points


adapter = PeeweeAsyncAdapter()


_SQLITE_NO = {
    "statement_timeout": "SQLite has no server-side statement timeout",
    "isolation_level": "SQLite transactions are serializable; no level to choose",
    "ssl": "SQLite is a local file: there is no connection to encrypt",
    **SQLITE_REFUSED,
}  # what the aiosqlite shim reports when these are set


def doc_table() -> str:
    """The translation table as it appears in docs/adapters/peewee_async.md."""
    from poolbridge.adapters._doctable import doc_table as render
    from poolbridge.adapters._ha import ENGINE_HA, LIBPQ_HA, LIBPQ_RECHECK, SQLITE_REFUSED_HA

    engine = {**ENGINE_EMULATED, **ENGINE_HA}
    libpq = {**PSYCOPG_EMULATED, **LIBPQ_HA}
    return render(
        {
            "PostgresqlDatabase (aiopg)": (engine, {}),
            "Psycopg3Database (psycopg)": (libpq, {"host_recheck_interval": LIBPQ_RECHECK}),
            "MySQLDatabase (aiomysql)": (engine, {}),
            "SqliteDatabase (aiosqlite)": (engine, {**_SQLITE_NO, **SQLITE_REFUSED_HA}),
        }
    )


def stock_key_table() -> str:
    """The stock-key table as it appears in docs/adapters/peewee_async.md."""
    from poolbridge.adapters.peewee_async._stock import stock_key_table as render

    return render()


async def _first(db: Any, cursor: Any) -> Any:
    """peewee-async fetch_results: the first value of the first row, None without rows."""
    if cursor.description is None:  # a statement without a result set
        return None
    return first_value(await cursor.fetchone())


@contextlib.contextmanager
def _fresh_connection_context() -> Any:
    """Start without peewee-async's task-local connection, so that the block checks out
    its own connection even when the same task already holds one (peewee-async reuses
    the task's connection in nested blocks)."""
    from peewee_async.connection import connection_context

    token = connection_context.set(None)
    try:
        yield
    finally:
        connection_context.reset(token)


def pool_params(config: PoolConfig | str, *, hooks: Hooks | None = None) -> dict[str, Any]:
    """``pool_params=`` for poolbridge's database classes (PostgresqlDatabase, ...);
    :func:`native_arguments` adds the database name.

    Connection parameters (host, user, password...) and pool knobs come from ``config``;
    the database's other connect keyword arguments reach the driver as stock (a key the
    config owns is refused when the database is built; see docs/adapters/peewee_async.md).
    Raises UnsupportedOptionError for explicitly set knobs the backend cannot honour.
    """
    from poolbridge.adapters.peewee_async._backend import PeeweeBinding

    config = as_config(config)
    adapter.check_available(config)
    enforce(adapter.name, config, adapter.translate(config))
    return {"poolbridge": PeeweeBinding(config, adapter.driver_for(config), hooks)}


def native_arguments(config: PoolConfig | str, *, hooks: Hooks | None = None) -> dict[str, Any]:
    """Keyword arguments for poolbridge's database class of ``config``'s driver
    (``PostgresqlDatabase(**native_arguments(config))``): ``database`` and ``pool_params``."""
    config = as_config(config)
    name = config.database_url.database or (":memory:" if config.backend == "sqlite" else "")
    return {"database": name, "pool_params": pool_params(config, hooks=hooks)}


def database(config: PoolConfig | str, *, hooks: Hooks | None = None, **db_kwargs: Any) -> Any:
    """A peewee-async database configured by ``config`` (pool opened at aio_connect or
    first use). ``db_kwargs`` go to the database class (e.g. ``field_types``, or connect
    kwargs such as ``init_command`` that reach the driver as stock). ``handle_of(db)`` is
    its uniform handle."""
    kwargs = native_arguments(config, hooks=hooks)
    cls = _database_class(kwargs["pool_params"]["poolbridge"].driver)
    return cls(**kwargs, **db_kwargs)


def open_pool(config: PoolConfig | str, *, hooks: Hooks | None = None) -> PoolOpener[PeeweePool]:
    """The uniform handle, connected: ``pool = await open_pool(config)`` or ``async with
    open_pool(config) as pool:``; ``pool.native`` is the database."""
    return opener(adapter, config, hooks)


def handle_of(db: Any) -> PeeweePool:
    """The uniform handle (``stats()``, ``rotate()``, ``close()``, ``acquire()``) of a
    database built by :func:`database` or with :func:`native_arguments`/:func:`pool_params`;
    ``.native`` is the database. One handle per database: a second call returns the same.
    ValueError for a database whose pool is not poolbridge's."""
    handle: PeeweePool | None = getattr(db, _HANDLE_ATTR, None)
    if handle is None:
        holder = getattr(getattr(db, "pool_backend", None), "holder", None)
        if holder is None:
            raise ValueError("database was not built by poolbridge.adapters.peewee_async")
        handle = PeeweePool(holder.config, db)
        setattr(db, _HANDLE_ATTR, handle)
    return handle


#: where handle_of() keeps a database's handle (an attribute of the database object)
_HANDLE_ATTR = "poolbridge_handle"


def _database_class(driver: str) -> type[Any]:
    cls: type[Any] = __getattr__(_CLASSES[driver])
    return cls


def __getattr__(name: str) -> Any:
    """The database classes, imported (with peewee-async) on first access."""
    if name == "Psycopg3Database":
        from poolbridge.adapters.peewee_async import _psycopg as _peewee_psycopg

        return _peewee_psycopg.Psycopg3Database
    if name in _CLASSES.values():
        from poolbridge.adapters.peewee_async import _backend as _peewee_backend

        return getattr(_peewee_backend, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class PeeweePool(Pool[Any]):
    """A peewee-async database as a poolbridge Pool (``.native`` is the database)."""

    def __init__(self, config: PoolConfig, db: Any) -> None:
        super().__init__(config, adapter="peewee_async")
        self._db = db
        self._closed = False
        holder = db.pool_backend.holder
        self._holder = holder
        self.hook_runner = holder.hook_runner
        self.recorder = holder.recorder

    @property
    def native(self) -> Any:
        return self._db

    @property
    def closed(self) -> bool:
        return self._closed

    def acquire(self) -> AbstractAsyncContextManager[Any]:
        return self._acquire()

    @asynccontextmanager
    async def _acquire(self) -> AsyncIterator[Any]:
        # straight from the backend: a second acquire in the same task gets its own
        # connection (peewee-async's aio_connection() would reuse the task's one)
        if self._closed:
            raise PoolClosed(f"pool {self.name!r} is closed")
        backend = self._db.pool_backend
        conn = await backend.acquire()
        try:
            yield conn
        finally:
            await backend.release(conn)

    async def ping(self) -> float:
        return await ping_select_one(self, adapter)

    async def rotate(self, password: str | PasswordProvider | None = None) -> None:
        """Replace every connection (see :meth:`Pool.rotate`); peewee-async's own queries
        get the new connections too, and a pool it re-creates later uses ``password``."""
        if self._closed:
            raise PoolClosed(f"pool {self.name!r} is closed")
        await self._holder.rotate(password)
        self.config = self._holder.config

    def server_ids(self) -> list[Any]:
        """Server-side ids of the pool's open connections."""
        return list(self._holder.server_ids())

    async def close(self, timeout: float | None = None) -> None:
        """Drain up to ``timeout`` s, then close every connection (no reopening)."""
        if self._closed:
            return
        self._closed = True
        self._holder.final = True
        await self._db.pool_backend.drain_close(timeout)
