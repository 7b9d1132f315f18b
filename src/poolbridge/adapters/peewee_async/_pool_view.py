"""``database.pool_backend.pool`` on the engine: the attribute surface of the pool it replaces.

Code written for peewee-async's aiopg/aiomysql backends reads the native pool
(``pool.size``, ``pool.freesize``, ``pool.maxsize``, ``pool._recycle`` to check that
``pool_params`` arrived; peewee-async itself reads ``len(pool._used)``). The view answers
those names from poolbridge's engine and config. Every attribute is read-only (a property
without setter): writing ``pool.maxsize`` on the native pool would not resize it either.
The methods (``acquire``, ``release``, ``close``, ``terminate``, ``wait_closed``,
``clear``) work on the engine with the native pool's calling conventions.

:data:`SURFACE` lists the names per driver; tests compare them one by one with the stock
pool, so a name the native pool gains or drops is noticed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Generator
from contextlib import asynccontextmanager
from typing import Any

from poolbridge.engine.checkout import Engine

__all__ = ["SURFACE", "EnginePoolView", "MySQLPoolView", "SqlitePoolView", "pool_view"]

_COMMON = (
    "echo", "minsize", "maxsize", "size", "freesize", "closed", "clear", "close",
    "terminate", "wait_closed", "acquire", "release",
    "_minsize", "_recycle", "_echo", "_used", "_free", "_terminated", "_closing",
    "_closed", "_conn_kwargs", "_loop", "_acquiring",
)  # fmt: skip

#: driver -> the native pool's attributes the view offers
SURFACE: dict[str, tuple[str, ...]] = {
    "aiopg": (
        *_COMMON,
        "timeout",
        "cursor",
        "_timeout",
        "_enable_json",
        "_enable_hstore",
        "_enable_uuid",
        "_dsn",
        "_on_connect",
    ),
    "aiomysql": _COMMON,
    # peewee-async's own AioSqlitePool (it opens one connection per acquire)
    "aiosqlite": (
        "acquire",
        "release",
        "has_acquired_connections",
        "close",
        "closed",
        "database",
        "connect_params",
        "_opened_connections",
        "_closed",
    ),
}

#: aiopg.connection.TIMEOUT: aiopg's per-operation bound when none is given
_AIOPG_TIMEOUT = 60.0
#: keys of the connect kwargs the view never shows
_SECRET = ("password", "passwd")


class _AcquireContext:
    """``await pool.acquire()`` or ``async with pool.acquire() as conn`` (released on exit)."""

    def __init__(self, view: EnginePoolView) -> None:
        self._view = view
        self._conn: Any = None

    def __await__(self) -> Generator[Any, None, Any]:
        return self._view.getconn().__await__()

    async def __aenter__(self) -> Any:
        self._conn = await self._view.getconn()
        return self._conn

    async def __aexit__(self, *exc: object) -> None:
        conn, self._conn = self._conn, None
        await self._view.putconn(conn)


class EnginePoolView:
    """The engine behind peewee-async's backend, shaped like aiopg's/aiomysql's pool."""

    def __init__(
        self, engine: Engine, driver: str, connect_kwargs: dict[str, Any], *, on_connect: Any
    ) -> None:
        self.engine = engine
        self.driver = driver
        self._pb_kwargs = connect_kwargs
        self._pb_on_connect = on_connect
        self._pb_used: set[Any] = set()
        self._pb_closing = False
        self._pb_close_task: asyncio.Task[None] | None = None
        self._pb_loop = asyncio.get_running_loop()  # made in the backend's create()

    def __repr__(self) -> str:
        return f"<poolbridge {self.driver} pool view of {self.engine!r}>"

    # -- what poolbridge's backend calls ------------------------------------------------
    async def getconn(self) -> Any:
        conn = await self.engine.getconn()
        self._pb_used.add(conn)
        return conn

    async def putconn(self, conn: Any) -> None:
        self._pb_used.discard(conn)
        await self.engine.putconn(conn)

    # -- the native pool's attributes ---------------------------------------------------
    @property
    def echo(self) -> bool:
        return bool(self._pb_kwargs.get("echo", False))

    _echo = echo

    @property
    def minsize(self) -> int:
        return self.engine.config.min_size

    _minsize = minsize

    @property
    def maxsize(self) -> int:
        return self.engine.config.max_size

    @property
    def size(self) -> int:
        return self.engine.size

    @property
    def freesize(self) -> int:
        return self.engine.idle_count

    @property
    def closed(self) -> bool:
        return self.engine.closed

    _closed = closed

    @property
    def _closing(self) -> bool:
        return self._pb_closing or self.engine.closed

    @property
    def _recycle(self) -> float:
        life = self.engine.config.max_lifetime
        return -1 if life is None else life

    @property
    def timeout(self) -> float:
        return float(self._pb_kwargs.get("timeout", _AIOPG_TIMEOUT))

    _timeout = timeout

    @property
    def _enable_json(self) -> bool:
        return bool(self._pb_kwargs.get("enable_json", True))

    @property
    def _enable_hstore(self) -> bool:
        return bool(self._pb_kwargs.get("enable_hstore", True))

    @property
    def _enable_uuid(self) -> bool:
        return bool(self._pb_kwargs.get("enable_uuid", True))

    @property
    def _dsn(self) -> str:
        return ""  # peewee-async passes keywords, never a dsn

    @property
    def _on_connect(self) -> Any:
        return self._pb_on_connect

    @property
    def _conn_kwargs(self) -> dict[str, Any]:
        """The driver's connect kwargs, without the password."""
        return {k: v for k, v in self._pb_kwargs.items() if k not in _SECRET}

    @property
    def _used(self) -> frozenset[Any]:
        return frozenset(self._pb_used)

    @property
    def _free(self) -> tuple[Any, ...]:
        return tuple(self.engine.idle_natives())

    @property
    def _terminated(self) -> frozenset[Any]:
        return frozenset()

    @property
    def _acquiring(self) -> int:
        return self.engine.waiting

    @property
    def _loop(self) -> asyncio.AbstractEventLoop:
        return self._pb_loop

    # -- the native pool's methods ------------------------------------------------------
    def acquire(self) -> _AcquireContext:
        return _AcquireContext(self)

    def release(self, conn: Any) -> asyncio.Task[None]:
        """Give ``conn`` back (like the native pool: returns an awaitable, need not be
        awaited)."""
        return asyncio.ensure_future(self.putconn(conn))

    @asynccontextmanager
    async def cursor(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        """aiopg's ``pool.cursor()``: a cursor on a connection of its own."""
        async with self.acquire() as conn, conn.cursor(*args, **kwargs) as cur:
            yield cur

    async def clear(self) -> None:
        """Close the idle connections (the engine refills to min_size)."""
        self.engine.expire_all()

    def close(self) -> None:
        """Refuse new acquires; :meth:`wait_closed` waits for the connections in use."""
        self._pb_closing = True
        self._pb_start_close(self.engine.config.acquire_timeout)

    def terminate(self) -> None:
        """Close every connection, also those in use, at once."""
        self._pb_closing = True
        self._pb_start_close(0)

    async def wait_closed(self) -> None:
        if self._pb_close_task is None:
            raise RuntimeError(".close() or .terminate() should be called before .wait_closed()")
        await asyncio.shield(self._pb_close_task)

    def _pb_start_close(self, timeout: float) -> None:
        if self._pb_close_task is None:
            self._pb_close_task = asyncio.ensure_future(self.engine.close(timeout))


class SqlitePoolView(EnginePoolView):
    """The engine shaped like peewee-async's AioSqlitePool (coroutine ``acquire``,
    ``release`` and ``close``)."""

    def __init__(
        self, engine: Engine, driver: str, connect_kwargs: dict[str, Any], *, on_connect: Any
    ) -> None:
        super().__init__(engine, driver, connect_kwargs, on_connect=on_connect)
        self.connect_params = {k: v for k, v in connect_kwargs.items() if k != "database"}

    @property
    def database(self) -> str:
        return str(self._pb_kwargs.get("database", ""))

    @property
    def _opened_connections(self) -> frozenset[Any]:
        return self._used

    def has_acquired_connections(self) -> bool:
        return bool(self._pb_used)

    async def release(self, conn: Any) -> None:  # type: ignore[override]
        await self.putconn(conn)

    async def close(self) -> None:  # type: ignore[override]
        """Close every connection (the engine's close without a drain)."""
        self._pb_closing = True
        await self.engine.close(0)


class MySQLPoolView(EnginePoolView, asyncio.AbstractServer):
    """aiomysql's pool is an ``asyncio.AbstractServer`` (``async with pool:`` closes it)."""


def pool_view(
    engine: Engine, driver: str, connect_kwargs: dict[str, Any], *, on_connect: Any
) -> EnginePoolView:
    """The view of ``engine`` shaped like the pool ``driver``'s stock backend makes."""
    cls = {"aiosqlite": SqlitePoolView, "aiomysql": MySQLPoolView}.get(driver, EnginePoolView)
    return cls(engine, driver, connect_kwargs, on_connect=on_connect)
