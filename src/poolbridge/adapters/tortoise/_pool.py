"""The uniform Pool handle around a Tortoise client (``.native`` is the client).

For poolbridge clients the handle shares the client's hook runner and stats recorder, so
``pool.stats()`` counts the ORM's own queries too. Imports Tortoise lazily.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from time import monotonic
from typing import Any

from poolbridge.adapters._glue import ping_select_one
from poolbridge.config.model import PasswordProvider, PoolConfig
from poolbridge.errors import ConnectError, PoolClosed
from poolbridge.pool.handle import Pool
from poolbridge.pool.loopguard import LoopGuard, get_running_loop

__all__ = ["TortoisePool", "TortoisePools", "warm_up"]


async def warm_up(client: Any) -> None:
    """Open the client's pool now (Tortoise opens it lazily at the first query); a server
    that cannot be reached is a ConnectError that is also Tortoise's DBConnectionError."""
    try:
        await _warm_up(client)
    except ConnectError as exc:
        raise _tortoise_connect_error(exc) from exc.__cause__
    except Exception as exc:
        # Tortoise's psycopg client turns the pool's error into DBConnectionError itself
        inner = exc.__context__
        if type(exc).__name__ == "DBConnectionError" and isinstance(inner, ConnectError):
            raise _tortoise_connect_error(inner) from inner.__cause__
        raise


@functools.cache
def _tortoise_connect_error_class() -> type[ConnectError]:
    from tortoise.exceptions import DBConnectionError

    class TortoiseConnectError(ConnectError, DBConnectionError):
        """poolbridge's ConnectError that is also what stock Tortoise raises when it
        cannot connect (``except DBConnectionError`` keeps working)."""

    return TortoiseConnectError


def _tortoise_connect_error(exc: ConnectError) -> ConnectError:
    if isinstance(exc, _tortoise_connect_error_class()):
        return exc
    return _tortoise_connect_error_class()(
        str(exc), host=exc.host, port=exc.port, attempts=exc.attempts, retryable=exc.retryable
    )


async def _warm_up(client: Any) -> None:
    lock = getattr(client, "_pool_init_lock", None)
    if lock is None:  # SQLite: one connection
        if getattr(client, "_connection", None) is None:
            await client.create_connection(with_db=True)
        return
    async with lock:
        if not client._pool:
            await client.create_connection(with_db=True)


class TortoisePool(Pool[Any]):
    """A Tortoise connection as a poolbridge Pool."""

    def __init__(
        self, config: PoolConfig, client: Any, *, context: Any, owns_context: bool = False
    ) -> None:
        super().__init__(config, adapter="tortoise")
        self._client = client
        self._context = context
        self._owns_context = owns_context
        self._closed = False
        self._holder = getattr(client, "poolbridge", None)
        if self._holder is not None:  # one runner/recorder for the ORM's and our acquires
            self.hook_runner = self._holder.hook_runner
            self.recorder = self._holder.recorder
        # SQLite without a poolbridge pool: the handle checks the loop itself (pooled
        # clients check it in their pool, where Tortoise's own queries go through too)
        self._guard = LoopGuard(config.name)
        self._guard.bind()

    @property
    def alias(self) -> str:
        """The Tortoise connection name (``connections.get(alias)``, ``in_transaction(alias)``)."""
        return str(self._client.connection_name)

    @property
    def native(self) -> Any:
        return self._client

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def context(self) -> Any:
        """The TortoiseContext the client lives in."""
        return self._context

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """Make the pool's TortoiseContext current (what ``in_transaction()`` looks up)."""
        from tortoise.context import _current_context

        token = _current_context.set(self._context)
        try:
            yield
        finally:
            _current_context.reset(token)

    def acquire(self) -> AbstractAsyncContextManager[Any]:
        return self._acquire()

    @asynccontextmanager
    async def _acquire(self) -> AsyncIterator[Any]:
        if self._closed:
            raise PoolClosed(f"pool {self.alias!r} is closed")
        if self._holder is not None:
            async with self._client.acquire_connection() as conn:
                yield conn
            return
        # SQLite: Tortoise has no pool events; count the handle's own use
        if self._guard.loop is not get_running_loop():
            raise self._guard.error()
        start = monotonic()
        self.recorder.pending += 1
        try:
            wrapper = self._client.acquire_connection()
            conn = await wrapper.__aenter__()
        finally:
            self.recorder.pending -= 1
        self.recorder.record_checkout(monotonic() - start)
        t0 = monotonic()
        try:
            yield conn
        finally:
            self.recorder.record_checkin(monotonic() - t0)
            await wrapper.__aexit__(None, None, None)

    async def ping(self) -> float:
        from poolbridge.adapters.tortoise import adapter

        return await ping_select_one(self, adapter)

    async def rotate(self, password: str | PasswordProvider | None = None) -> None:
        """Replace every connection (see :meth:`Pool.rotate`); Tortoise's own queries get
        the new connections too. An in-memory SQLite database lives in its one connection:
        nothing to replace there (a no-op)."""
        if self._closed:
            raise PoolClosed(f"pool {self.alias!r} is closed")
        if self._holder is not None:
            await self._holder.rotate(password)
            self.config = self._holder.config

    def server_ids(self) -> list[Any]:
        """Server-side ids of the pool's open connections (backend pids / thread ids)."""
        return [] if self._holder is None else self._holder.server_ids()

    async def close(self, timeout: float | None = None) -> None:
        """Drain up to ``timeout`` s, then close every connection; Tortoise may not reopen."""
        if self._closed:
            return
        self._closed = True
        client = self._client
        if self._holder is not None:
            self._holder.final = True
            await self._holder.close(timeout)
        else:
            lock = client._lock
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await lock.acquire()
                    lock.release()
        await client.close()
        if self._owns_context:
            await self._context.close_connections()


class TortoisePools(Mapping[str, TortoisePool]):
    """The pools :func:`poolbridge.adapters.tortoise.init` opened, by connection name."""

    def __init__(self, pools: dict[str, TortoisePool], context: Any) -> None:
        self._pools = pools
        self.context = context

    def __getitem__(self, name: str) -> TortoisePool:
        return self._pools[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._pools)

    def __len__(self) -> int:
        return len(self._pools)

    async def close(self, timeout: float | None = None) -> None:
        """Drain and close every pool, then Tortoise's connections (idempotent)."""
        for pool in self._pools.values():
            await pool.close(timeout)
        await self.context.close_connections()

    async def __aenter__(self) -> TortoisePools:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
