"""The uniform Pool handle of :mod:`poolbridge.adapters.psycopg` (imports psycopg).

``.native`` is a :class:`~poolbridge.drivers.psycopg.pool.PBConnectionPool`, a real psycopg_pool
``AsyncConnectionPool``; the handle shares its hook runner, stats recorder and leak tracker.
"""

from __future__ import annotations

from collections.abc import Coroutine
from contextlib import AbstractAsyncContextManager
from time import monotonic
from types import TracebackType
from typing import Any

import psycopg

from poolbridge.config.model import PasswordProvider, PoolConfig
from poolbridge.drivers.psycopg.conninfo import conninfo_kwargs, pool_options
from poolbridge.drivers.psycopg.pool import PBConnectionPool, PoolClosed, PsycopgHolder
from poolbridge.pool.handle import Pool
from poolbridge.pool.hooks import Hooks

__all__ = ["PsycopgPool", "open_psycopg_pool"]


class _Acquire(AbstractAsyncContextManager[psycopg.AsyncConnection[Any]]):
    """``async with pool.acquire() as conn``: getconn, then putconn.

    A plain class rather than ``@asynccontextmanager`` (no async generator per checkout),
    and no ``asyncio.shield()`` around the release: :meth:`PBConnectionPool.putconn` runs
    in the caller's task and handles its own interruption (a cancelled release closes the
    connection and psycopg_pool replaces it), so the hot path creates no task.
    """

    __slots__ = ("_conn", "_pool")

    def __init__(self, pool: PsycopgPool) -> None:
        self._pool = pool
        self._conn: psycopg.AsyncConnection[Any] | None = None

    async def __aenter__(self) -> psycopg.AsyncConnection[Any]:
        pool = self._pool
        if pool._closing:
            raise PoolClosed(f"pool {pool.config.name!r} is closed")
        conn: psycopg.AsyncConnection[Any] = await pool._native.getconn()
        self._conn = conn
        return conn

    def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Coroutine[Any, Any, None]:
        # putconn's own coroutine, not one wrapping it: a coroutine frame less per release
        # rollback=True: this release rolls back by contract (the ``reset`` knob), so a
        # transaction left open is no mistake to warn about (see PBConnectionPool.putconn)
        conn, self._conn = self._conn, None
        return _nothing() if conn is None else self._pool._native.putconn(conn, rollback=True)


async def _nothing() -> None:
    return None


class PsycopgPool(Pool[psycopg.AsyncConnection[Any]]):
    """The poolbridge handle around a :class:`PBConnectionPool`."""

    def __init__(self, config: PoolConfig, *, adapter: str, hooks: Hooks | None) -> None:
        super().__init__(config, adapter=adapter, hooks=hooks)
        holder = PsycopgHolder(config, adapter=adapter, hooks=hooks)
        self.hook_runner = holder.hook_runner
        self.recorder = holder.recorder
        self.leaks = holder.leaks
        self._holder = holder

        async def kwargs() -> dict[str, Any]:
            current = holder.config  # read per connection: rotate() may change the password
            return conninfo_kwargs(current, await current.get_password())

        self._native = PBConnectionPool("", kwargs=kwargs, poolbridge=holder,
                                        **pool_options(config))  # fmt: skip
        holder.pool = self._native
        self._closing = False

    @property
    def native(self) -> PBConnectionPool:
        return self._native

    @property
    def closed(self) -> bool:
        return self._closing

    async def _open(self) -> None:
        try:
            await self._native.pb_open()
        except BaseException:
            self._closing = True
            raise

    def acquire(self) -> AbstractAsyncContextManager[psycopg.AsyncConnection[Any]]:
        return _Acquire(self)

    async def ping(self) -> float:
        t0 = monotonic()
        async with self.acquire() as conn:
            await conn.execute("SELECT 1")
        return monotonic() - t0

    async def rotate(self, password: str | PasswordProvider | None = None) -> None:
        if self._closing:
            raise PoolClosed(f"pool {self.config.name!r} is closed")
        await self._holder.rotate(password)
        self.config = self._holder.config

    async def close(self, timeout: float | None = None) -> None:
        """Refuse new checkouts, drain up to ``timeout`` s (None: ``acquire_timeout``), then
        close what is still checked out."""
        if self._closing:
            return
        self._closing = True
        await self._native.pb_close(timeout)


async def open_psycopg_pool(
    config: PoolConfig, hooks: Hooks | None, *, adapter: str
) -> PsycopgPool:
    """Create the pool and wait until ``min_size`` connections are open."""
    pool = PsycopgPool(config, adapter=adapter, hooks=hooks)
    await pool._open()
    return pool
