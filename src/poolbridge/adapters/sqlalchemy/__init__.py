"""SQLAlchemy asyncio adapter: a real AsyncEngine that honours a PoolConfig.

Three ways in (the verbs every adapter package shares, see docs/adapters/index.md)::

    from poolbridge.adapters.sqlalchemy import create_async_engine, native_arguments, open_pool

    engine = create_async_engine(config, hooks=hooks)   # an AsyncEngine, as SQLAlchemy's
    await warm_up(engine)                               # optional: min_size opened now
    pool = await open_pool(config)                      # the uniform handle; .native: engine
    engine = sqlalchemy.ext.asyncio.create_async_engine(**native_arguments(config))  # plain

``create_async_engine`` is synchronous like SQLAlchemy's own and takes a PoolConfig or a URL
(pool options in its query). The engine warms up to min_size in the background on first use,
or when :func:`warm_up` is awaited; :func:`handle_of` gives its uniform handle.
``create_async_engine`` puts poolbridge's pool class (:mod:`._pool`) and pool
events (:mod:`._events`) inside the engine, so ``engine.connect()`` and
``AsyncSession`` users get warm-up/refill to min_size, max_idle, max_waiting, FIFO waiters,
PoolTimeout with diagnostics, hooks, stats and leak reports too. ``engine_kwargs`` returns only
arguments SQLAlchemy understands by itself; a knob that needs poolbridge's machinery raises
UnsupportedOptionError there when set explicitly (one warning when left at its default).

SQLAlchemy is imported lazily: importing this module (e.g. for ``poolbridge config show``)
works without it. Supported: postgresql+asyncpg, postgresql+psycopg, mysql+aiomysql,
mysql+asyncmy, sqlite+aiosqlite (file, or in-memory with max_size=1).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from time import perf_counter
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

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
from poolbridge.adapters.sqlalchemy import _translate as _t
from poolbridge.config.model import PasswordProvider, PoolConfig
from poolbridge.drivers.connect_errors import is_permanent_connect_error
from poolbridge.errors import PoolClosed, PoolTimeout, UnsupportedOptionError
from poolbridge.pool.connect_error import open_error
from poolbridge.pool.handle import Pool, PoolOpener
from poolbridge.pool.hooks import HookRunner, Hooks
from poolbridge.pool.stats import PoolStats, StatsRecorder

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

    from poolbridge.adapters.sqlalchemy._state import BridgeState

__all__ = [
    "SQLAlchemyAdapter",
    "SQLAlchemyPool",
    "adapter",
    "close_engine",
    "create_async_engine",
    "engine_kwargs",
    "engine_state",
    "engine_stats",
    "handle_of",
    "native_arguments",
    "open_pool",
    "rotate_engine",
    "warm_up",
]

#: the entry points named after SQLAlchemy's own (docs/adapters/index.md lists them)
ORM_ENTRY_POINTS = (
    "create_async_engine(config, **kwargs) -> AsyncEngine",
    "warm_up(engine)",
    "close_engine(engine)",
    "rotate_engine(engine)",
    "engine_kwargs(config)",
)
#: how the object the ORM-named entry points give reaches its uniform handle
HANDLE_ACCESS: str | None = "handle_of(engine)"

_DRIVER_MODULES = {
    "asyncpg": ("asyncpg",),
    "psycopg": ("psycopg",),
    "aiomysql": ("aiomysql",),
    "asyncmy": ("asyncmy",),
    "aiosqlite": ("aiosqlite",),
}


def _check_memory(config: PoolConfig) -> None:
    if _t.is_memory_sqlite(config) and config.max_size != 1:
        raise UnsupportedOptionError(
            "sqlalchemy",
            {
                "max_size": "an in-memory SQLite database lives in one connection: max_size "
                f"must be 1 (got {config.max_size})"
            },
        )


def _url_object(config: PoolConfig, driver: str) -> Any:
    """A SQLAlchemy URL object (its repr and str mask the password, unlike a string)."""
    from sqlalchemy.engine import make_url

    url = make_url(_t.sqlalchemy_url(config, driver, with_password=config.password is None))
    if isinstance(config.password, str):
        url = url.set(password=config.password)
    return url


def _native_kwargs(config: PoolConfig, t: Translation, driver: str) -> dict[str, Any]:
    kw = dict(t.native)
    kw["url"] = _url_object(config, driver)
    ca = dict(kw.get("connect_args", {}))
    if "server_settings" in ca:
        ca["server_settings"] = dict(ca["server_settings"])
    if driver == "asyncpg" and not config.statement_cache:
        ca.setdefault("prepared_statement_name_func", _unnamed_statement)
    kw["connect_args"] = ca
    return kw


def _unnamed_statement() -> str:
    """Prepared statement name for pgbouncer transaction mode: the unnamed statement.

    With ``statement_cache_size=0`` asyncpg re-Parses an unnamed statement inside the same
    Bind/Execute batch (its own PgBouncer mode), so nothing named is ever left on a server
    connection that pgbouncer may hand to another client. Unique names (SQLAlchemy's recipe)
    avoid collisions too, but leave the statements behind until asyncpg closes them lazily.
    """
    return ""


def native_arguments(config: PoolConfig | str) -> dict[str, Any]:
    """Plain ``sqlalchemy.ext.asyncio.create_async_engine(**kwargs)`` arguments for ``config``
    (a PoolConfig or a URL with pool options in its query).

    Includes ``url`` (a SQLAlchemy URL object: its repr hides the password). Knobs that need
    poolbridge's pool class or events (min_size warm-up, max_idle, max_waiting, a password
    provider, leak_timeout, a full reset...) cannot be carried: UnsupportedOptionError if set
    explicitly, one UnsupportedOptionWarning if left at a default.
    """
    config = as_config(config)
    adapter.check_available(config)
    driver = adapter.driver_for(config)
    _check_memory(config)
    t = _t.plain_translation(config)
    enforce(adapter.name, config, t, zero_wait=True)
    kw = _native_kwargs(config, t, driver)
    if _t.is_memory_sqlite(config):
        from sqlalchemy.pool import StaticPool

        kw["poolclass"] = StaticPool
    return kw


engine_kwargs = native_arguments
"""The name :func:`native_arguments` is also known by."""

#: SQLAlchemy's pool arguments that the PoolConfig owns: refused by name (the pool class is
#: poolbridge's; its size, timeout, recycle and reset come from the config)
_OWNED_ENGINE_KWARGS: dict[str, str] = {
    "poolclass": "the pool class is poolbridge's (use native_arguments() for a stock pool)",
    "pool": "the pool is poolbridge's (use native_arguments() for a stock pool)",
    "pool_size": "set max_size in the PoolConfig (URL ?max_size=)",
    "max_overflow": "max_size in the PoolConfig is the hard cap (URL ?max_size=)",
    "pool_timeout": "set acquire_timeout in the PoolConfig (URL ?acquire_timeout=)",
    "pool_recycle": "set max_lifetime in the PoolConfig (URL ?max_lifetime=)",
    "pool_reset_on_return": "set reset in the PoolConfig (URL ?reset=)",
    "pool_use_lifo": "poolbridge's pool hands out idle connections in its own order",
    "poolbridge": "set by create_async_engine itself",
}


def _refuse_owned(engine_kw: Mapping[str, Any]) -> None:
    refused = {k: why for k, why in _OWNED_ENGINE_KWARGS.items() if k in engine_kw}
    if refused:
        raise UnsupportedOptionError(adapter.name, refused)


def _build(
    config: PoolConfig,
    hook_runner: HookRunner,
    recorder: StatsRecorder,
    engine_kw: Mapping[str, Any],
) -> tuple[AsyncEngine, BridgeState]:
    from sqlalchemy.ext.asyncio import create_async_engine as sa_create

    from poolbridge.adapters.sqlalchemy._events import install
    from poolbridge.adapters.sqlalchemy._hosts import install as install_hosts
    from poolbridge.adapters.sqlalchemy._pool import BridgePool
    from poolbridge.adapters.sqlalchemy._state import BridgeState

    _refuse_owned(engine_kw)
    sa_kw = dict(engine_kw)
    if "pool_pre_ping" in sa_kw and config.pre_ping is None:
        # SQLAlchemy's own argument asks for the pre-ping: poolbridge's (bounded) one does it
        config = dataclasses.replace(config, pre_ping=bool(sa_kw.pop("pool_pre_ping")))
    adapter.check_available(config)
    driver = adapter.driver_for(config)
    _check_memory(config)
    t = adapter.translate(config)
    enforce(adapter.name, config, t, zero_wait=True)
    user_ca = sa_kw.get("connect_args")
    if isinstance(user_ca, Mapping):
        refused = _t.connect_args_conflicts(config, driver, user_ca)
        if refused:
            raise UnsupportedOptionError(adapter.name, refused)
    state = BridgeState(
        config,
        adapter=adapter.name,
        driver=driver,
        hooks=hook_runner,
        recorder=recorder,
        memory=_t.is_memory_sqlite(config),
    )
    kw = _native_kwargs(config, t, driver)
    url = kw.pop("url")
    user_ca = sa_kw.pop("connect_args", None)
    if isinstance(user_ca, Mapping):
        # merged over poolbridge's key by key (server_settings too), as driver_options are
        kw["connect_args"] = _t.merge_connect_args(config, driver, kw["connect_args"], user_ca)
    elif user_ca is not None:
        sa_kw["connect_args"] = user_ca  # not a mapping: SQLAlchemy's own error, as stock
    kw.update(sa_kw)
    kw["poolclass"] = BridgePool
    kw["poolbridge"] = state
    engine = sa_create(url, **kw)
    install(engine, state)
    install_hosts(engine, state)  # several hosts: after poolbridge's own listeners
    return engine, state


def create_async_engine(
    config: PoolConfig | str, *, hooks: Hooks | None = None, **engine_kw: Any
) -> AsyncEngine:
    """A real AsyncEngine for ``config`` (a PoolConfig, or a URL with pool options in its
    query), synchronous like ``sqlalchemy.ext.asyncio.create_async_engine``.

    ``engine_kw`` are SQLAlchemy's own arguments, passed through (``echo=True``,
    ``connect_args``...); the pool arguments the config owns (``pool_size``,
    ``pool_timeout``, ``poolclass``...) raise UnsupportedOptionError naming them. No
    connection is opened here: the first use starts the maintenance, which warms up to
    ``min_size`` in the background; ``await warm_up(engine)`` does it now (and raises
    ConnectError when the server cannot be reached). ``await engine.dispose()`` closes the
    pool's connections as stock; ``await close_engine(engine)`` drains, terminates and closes
    for good.
    """
    config = as_config(config)
    recorder = StatsRecorder(min_size=config.min_size, max_size=config.max_size)
    engine, _ = _build(config, HookRunner(hooks or Hooks()), recorder, engine_kw)
    # dormant: the first checkout binds the engine to the running loop and starts the
    # maintenance (the same path a pool re-created by engine.dispose() takes)
    engine.sync_engine.pool._dormant = True  # type: ignore[attr-defined]
    return engine


async def warm_up(engine: AsyncEngine) -> AsyncEngine:
    """Open ``min_size`` connections of an engine made by :func:`create_async_engine` now,
    and start its maintenance; returns the engine
    (``engine = await warm_up(create_async_engine(config))``).

    ConnectError when the server cannot be reached: the engine is then disposed
    (``engine.dispose()``, so no task is left) and stays usable, as after a dispose.
    """
    state = engine_state(engine)
    pool: Any = engine.sync_engine.pool
    if pool._dormant:
        pool._dormant = False
        await _start(engine, state, close=False)
    else:
        state.guard.check()
        failed_before = state.recorder.errors
        try:
            await state.warm_up()
        except BaseException as exc:
            await _failed(engine, state, exc, failed_before, close=False)
    return engine


def handle_of(engine: AsyncEngine) -> SQLAlchemyPool:
    """The uniform handle (``stats()``, ``rotate()``, ``close()``, ``acquire()``) of an
    engine made by :func:`create_async_engine`; ``.native`` is the engine. One handle per
    engine: a second call returns the same one."""
    state = engine_state(engine)
    handle: SQLAlchemyPool | None = state.handle
    if handle is None:
        handle = state.handle = SQLAlchemyPool._of(engine, state)
    return handle


def open_pool(
    config: PoolConfig | str, *, hooks: Hooks | None = None
) -> PoolOpener[SQLAlchemyPool]:
    """The uniform handle, opened and warmed up: ``pool = await open_pool(config)`` or
    ``async with open_pool(config) as pool:``; ``pool.native`` is the AsyncEngine."""
    return opener(adapter, config, hooks)


async def _start(engine: AsyncEngine, state: BridgeState, *, close: bool = True) -> None:
    failed_before = state.recorder.errors
    try:
        await state.start()
    except BaseException as exc:
        await _failed(engine, state, exc, failed_before, close=close)


async def _failed(
    engine: AsyncEngine, state: BridgeState, error: BaseException, failed_before: int,
    *, close: bool,
) -> NoReturn:  # fmt: skip
    """Close (``close``) or dispose the engine after a failed warm-up, then raise."""
    if close:
        await state.shutdown(engine.dispose, 0)
    else:
        await engine.dispose()
    # one error type for "cannot reach the server" on every pool (ConnectError)
    raise open_error(
        state.config,
        error,
        attempts=state.recorder.errors - failed_before,
        retryable=not is_permanent_connect_error(error),
    )


def engine_state(engine: AsyncEngine) -> BridgeState:
    """The poolbridge state (stats recorder, hooks, recorded server ids) of an engine made by
    :func:`create_async_engine`; ValueError for any other engine."""
    state = getattr(engine.sync_engine.pool, "_state", None)
    if state is None:
        raise ValueError("engine was not created by poolbridge.adapters.sqlalchemy")
    return state  # type: ignore[no-any-return]


def engine_stats(engine: AsyncEngine) -> PoolStats:
    """The documented stats dict (:mod:`poolbridge.pool.stats`) of an engine made by
    :func:`create_async_engine`, counted from poolbridge's own events."""
    state = engine_state(engine)
    snapshot = state.recorder.snapshot()
    snapshot["connection.hook_failures"] = sum(state.hooks.failures.values())
    return snapshot


async def close_engine(engine: AsyncEngine, timeout: float | None = None) -> None:
    """Drain (up to ``timeout`` s), terminate what is still checked out, dispose."""
    await engine_state(engine).shutdown(engine.dispose, timeout)


async def rotate_engine(
    engine: AsyncEngine, password: str | PasswordProvider | None = None
) -> None:
    """Replace every connection of ``engine`` without downtime; new connections use
    ``password`` (None: keep it). See :meth:`poolbridge.pool.handle.Pool.rotate`."""
    state = engine_state(engine)
    pool: Any = engine.sync_engine.pool
    if pool._dormant:  # never used yet: bind to this loop and start the maintenance
        pool._dormant = False
        state.resume()
    await state.rotate(password)


class SQLAlchemyPool(Pool["AsyncConnection"]):
    """The uniform handle: ``acquire()`` yields an AsyncConnection; ``.native`` is the engine."""

    def __init__(self, config: PoolConfig, hooks: Hooks | None = None) -> None:
        super().__init__(config, adapter="sqlalchemy", hooks=hooks)
        self._engine: AsyncEngine | None = None
        self._state: BridgeState | None = None

    @classmethod
    def _of(cls, engine: AsyncEngine, state: BridgeState) -> SQLAlchemyPool:
        """The handle of an engine made by create_async_engine (shares its state)."""
        pool = cls(state.config)
        pool.hook_runner = state.hooks
        pool.recorder = state.recorder
        pool._engine, pool._state = engine, state
        return pool

    async def _open(self) -> None:
        self._engine, self._state = _build(self.config, self.hook_runner, self.recorder, {})
        await _start(self._engine, self._state)

    @property
    def native(self) -> AsyncEngine:
        assert self._engine is not None
        return self._engine

    @property
    def state(self) -> BridgeState:
        assert self._state is not None
        return self._state

    @property
    def closed(self) -> bool:
        return self._state is None or self._state.closed

    def acquire(self) -> AbstractAsyncContextManager[AsyncConnection]:
        return self._acquire()

    @asynccontextmanager
    async def _acquire(self) -> AsyncIterator[AsyncConnection]:
        from sqlalchemy import exc as sa_exc

        if self.closed:
            raise PoolClosed(f"pool {self.name!r} is closed")
        try:
            conn = await self.native.connect()
        except sa_exc.TimeoutError as exc:
            if isinstance(exc, PoolTimeout):
                raise
            raise PoolTimeout(f"pool {self.name!r}: {exc}") from exc
        try:
            yield conn
        finally:
            # AsyncConnection.__aexit__ runs close() to completion even when cancelled
            await conn.__aexit__(None, None, None)

    async def ping(self) -> float:
        start = perf_counter()
        async with self.acquire() as conn:
            await conn.exec_driver_sql("SELECT 1")
        return perf_counter() - start

    async def rotate(self, password: str | PasswordProvider | None = None) -> None:
        if self._state is None or self._engine is None:
            raise PoolClosed(f"pool {self.name!r} is not open")
        await rotate_engine(self._engine, password)
        self.config = self._state.config

    async def close(self, timeout: float | None = None) -> None:
        if self._state is None or self._engine is None:
            return
        await self._state.shutdown(self._engine.dispose, timeout)


_DOC_NOTES = """
## Entry points

- `create_async_engine(config, hooks=None, **kwargs)` is synchronous like SQLAlchemy's
  own and returns an `AsyncEngine`. `config` is a PoolConfig or a URL with the pool options
  in its query. SQLAlchemy's own keyword arguments (`echo`, `connect_args`, ...) pass
  through; the pool arguments the config owns (`pool_size`, `max_overflow`,
  `pool_timeout`, `pool_recycle`, `pool_reset_on_return`, `pool_use_lifo`, `poolclass`,
  `pool`) raise `UnsupportedOptionError` naming them.
- Nothing is opened at creation. The first use starts the maintenance, which opens
  `min_size` connections in the background; `await warm_up(engine)` opens them now
  (`ConnectError` when the server cannot be reached) and returns the engine.
- `handle_of(engine)` is the engine's uniform handle (`stats()`, `rotate()`, `close()`).
- `native_arguments(config)` (also `engine_kwargs`) gives the arguments of a plain
  `sqlalchemy.ext.asyncio.create_async_engine(**kwargs)`; `open_pool(config)` opens the
  uniform handle, whose `.native` is the engine.

## Closing: `engine.dispose()` and `close_engine()`

- `await engine.dispose()` keeps SQLAlchemy's meaning. It closes the pool's idle
  connections (a connection still checked out is closed when it comes back) and puts a
  fresh, empty pool in `engine.pool`: your pool listeners, poolbridge's hooks, stats and
  leak tracking carry over. It also stops poolbridge's maintenance: nothing refills the
  new pool and no task is left, so `asyncio.run()` returns. A later use opens connections
  as needed and restarts the maintenance, which refills to `min_size` in the
  background. As stock, `dispose(close=False)` lets the engine be used again from a new
  event loop.
- `await close_engine(engine, timeout=None)` closes for good. It refuses new checkouts,
  waits up to `timeout` (default `acquire_timeout`) for checked-out connections, terminates
  the rest and disposes; later use raises `PoolClosed`.

## What stays as stock

- `engine.pool` answers as `QueuePool(pool_size=max_size, max_overflow=0)` would:
  `size()`, `checkedin()`, `checkedout()` (a connection being opened counts as checked
  out), `overflow()` (negative below `size()`), `timeout()` and `status()` use QueuePool's
  meanings and format. With `acquire_timeout=0` (SQLAlchemy's `pool_timeout=0`) a checkout
  fails at once when every connection is in use, and opening a connection on a free slot
  is still bounded by `connect_timeout`.
- The pool timeout is `PoolTimeout`, which is also a `sqlalchemy.exc.TimeoutError`.
- `create_async_engine(config, pool_pre_ping=True)` turns on the pre-ping when the config
  leaves `pre_ping` unset. It is poolbridge's pre-ping, bounded by `connect_timeout`; a
  `pre_ping` set in the config wins.
- `Connection.info` (the connection record's `.info`) holds only what your code puts there.
- Your own pool listeners run after poolbridge's on the same event. If one of them raises
  `DisconnectionError`, SQLAlchemy replaces the connection, as stock.
- Calling the pool's creator directly, with no connection record (the `async_creator`
  recipes), works with every listener.
- `mariadb+aiomysql://` and `mariadb+asyncmy://` keep SQLAlchemy's MariaDB dialect.
- PostgreSQL: `application_name` follows the rule of every PostgreSQL stack: the user's
  value wins — `driver_options` (asyncpg: its `server_settings`; a top-level
  `application_name` there, which `asyncpg.connect` has no argument for, is sent as the
  server setting too), then `session`, then the URL query — on asyncpg (sent as a server
  setting) and psycopg alike, and `create_async_engine`'s own `connect_args` have the last
  word. The pool name is only the default.
- psycopg: your libpq `options` (`connect_args`, `driver_options` or the URL's
  `?options=`; as stock, `connect_args`' replace the URL's) are sent together with
  poolbridge's `-c` settings (`session`, `statement_timeout`), never replaced by them; a
  `statement_timeout` / `default_transaction_isolation` there that disagrees with the
  knob raises `UnsupportedOptionError` naming both.
- Your `connect_args` (the `create_async_engine` keyword, or `driver_options`) are merged
  into poolbridge's key by key, as stock SQLAlchemy merges them into the URL's: your keys
  win, poolbridge's others (`timeout`, `command_timeout`, `ssl`...) stay. On asyncpg the
  `server_settings` dicts are merged key by key too: your settings (`search_path`,
  `work_mem`, `application_name`...) reach the server as on a stock engine, and
  poolbridge's (`statement_timeout`, `session`, the pool name as `application_name`) stay
  beside them. A `statement_timeout` or `default_transaction_isolation` there that
  disagrees with the PoolConfig's `statement_timeout` / `isolation_level` raises
  `UnsupportedOptionError` naming both values (the same value in both places is fine), as
  on the asyncpg driver stack.

## Several hosts

- `hosts`, `target_session_attrs`, `load_balance_hosts` and `host_recheck_interval` hold
  through every entry point (docs/high-availability.md). On asyncpg, aiomysql and asyncmy
  the `do_connect` event hands the dialect poolbridge's connect wrapper, which calls the
  dialect's own connect function one host at a time (drivers/hosts.py, as the engine-backed
  drivers); on psycopg, libpq routes (its keys in `connect_args`).
- A connection on a fallback host expires after `host_recheck_interval`, as one past
  `max_lifetime`; a read-only error on a `read-write`/`primary` engine invalidates that
  connection (`handle_error`, `is_disconnect`).
- One host and no target: the dialect's own connect, untouched, as stock.
"""


def _stock_keyword_table() -> str:
    """Every ``create_async_engine`` keyword and what poolbridge does with it, from the
    refusal table the code uses."""
    rows = [
        f"| `{key}` | refused by name: {why} |"
        for key, why in _OWNED_ENGINE_KWARGS.items()
        if key != "poolbridge"
    ]
    rows.append(
        "| `pool_pre_ping` | poolbridge's bounded pre-ping when the config leaves `pre_ping` "
        "unset; a `pre_ping` set in the config wins |"
    )
    rows.append(
        "| `connect_args` | merged into poolbridge's key by key (asyncpg `server_settings` "
        "too): yours win, poolbridge's others stay; a setting that disagrees with "
        "`statement_timeout` / `isolation_level` is refused by name |"
    )
    rows.append(
        "| every other keyword (`echo`, `execution_options`, "
        "`isolation_level`, `json_serializer`, `logging_name`, ...) | passed to SQLAlchemy "
        "as stock |"
    )
    rows.append(
        "| driver keys in the URL query | passed to the dialect as stock (PostgreSQL "
        "`application_name`: the server sees yours) |"
    )
    return "\n".join(
        [
            "## Stock keyword arguments of `create_async_engine`",
            "",
            "| keyword | with poolbridge |",
            "|---|---|",
            *rows,
            "",
        ]
    )


_DOC_NOTES = _DOC_NOTES.rstrip() + "\n\n" + _stock_keyword_table()


def _scalar(result: Any) -> Any:
    """First column of the first row, or None for a statement that returns no rows."""
    return result.scalar() if result.returns_rows else None


class SQLAlchemyAdapter(Adapter):
    """SQLAlchemy asyncio (see the module docstring)."""

    name: ClassVar[str] = "sqlalchemy"
    stock_twin_path: ClassVar[str | None] = "poolbridge.adapters.sqlalchemy._twin:SQLAlchemyTwin"
    extra: ClassVar[str] = "sqlalchemy"
    drivers: ClassVar[Mapping[str, tuple[str, ...]]] = _t.DRIVERS
    doc_notes: ClassVar[str] = _DOC_NOTES

    def check_available(self, config: PoolConfig | None = None) -> None:
        require_modules(self.name, "sqlalchemy", "sqlalchemy", "greenlet")
        if config is not None:
            driver = self.driver_for(config)
            require_modules(self.name, driver, *_DRIVER_MODULES.get(driver, ()))

    def translate(self, config: PoolConfig) -> Translation:
        return _t.translate(config)

    async def open(self, config: PoolConfig, hooks: Hooks | None = None) -> SQLAlchemyPool:
        pool = SQLAlchemyPool(config, hooks)
        await pool._open()
        return pool

    async def fetch_scalar(self, conn: Any, sql: str) -> Any:
        return _scalar(await conn.exec_driver_sql(sql))

    def entry_points(self, pool: Pool[Any]) -> Mapping[str, EntryPoint]:
        points = dict(super().entry_points(pool))
        engine = pool.native

        @asynccontextmanager
        async def engine_connect() -> AsyncIterator[ScalarRunner]:
            async with engine.connect() as conn:

                async def run(sql: str) -> Any:
                    return _scalar(await conn.exec_driver_sql(sql))

                yield run

        @asynccontextmanager
        async def async_session() -> AsyncIterator[ScalarRunner]:
            from sqlalchemy.ext.asyncio import AsyncSession

            async with AsyncSession(engine) as session:
                # a session checks out lazily: take the connection now, like the others
                conn = await session.connection()

                async def run(sql: str) -> Any:
                    return _scalar(await conn.exec_driver_sql(sql))

                yield run

        points["engine.connect"] = engine_connect
        points["AsyncSession"] = async_session
        return points

    def closed_requirements(self, backend: str, driver: str) -> Mapping[str, str]:
        """Nothing closed beyond the backend-wide rows of the suite (no server for SQLite):
        every row holds through the handle, ``engine.connect()`` and ``AsyncSession``."""
        return {}


adapter = SQLAlchemyAdapter()
