"""The uniform Pool handle every adapter returns.

Whatever the stack, a pool offers the same things: ``acquire()`` (an async context
manager yielding the stack's native connection), ``stats()`` (the dict documented in
:mod:`poolbridge.pool.stats`), ``ping()``, ``close(timeout=)``, ``rotate(password=)`` and
``.native`` (the AsyncEngine, Tortoise client, peewee-async database or driver pool).
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Generator
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Generic, TypeVar

from poolbridge.config.model import PasswordProvider, PoolConfig
from poolbridge.pool.hooks import HookRunner, Hooks
from poolbridge.pool.stats import PoolStats, StatsRecorder

__all__ = ["Pool", "PoolOpener"]

ConnT = TypeVar("ConnT")
PoolT = TypeVar("PoolT", bound="Pool[Any]")


class Pool(abc.ABC, Generic[ConnT]):
    """A pool opened by an adapter. Use ``async with pool.acquire() as conn``."""

    adapter: str

    def __init__(self, config: PoolConfig, *, adapter: str, hooks: Hooks | None = None) -> None:
        self.config = config
        self.adapter = adapter
        self.hook_runner = HookRunner(hooks or Hooks())
        self.recorder = StatsRecorder(min_size=config.min_size, max_size=config.max_size)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    @abc.abstractmethod
    def native(self) -> Any:
        """The stack's own object (engine, client, database, driver pool)."""

    @property
    @abc.abstractmethod
    def closed(self) -> bool:
        """True once :meth:`close` has started."""

    @abc.abstractmethod
    def acquire(self) -> AbstractAsyncContextManager[ConnT]:
        """Check out a connection for the duration of the ``async with`` block.

        Raises PoolTimeout after ``acquire_timeout``, TooManyRequests when ``max_waiting``
        callers already wait, PoolClosed after close().
        """

    @abc.abstractmethod
    async def ping(self) -> float:
        """Round-trip one trivial statement; returns the seconds it took."""

    @abc.abstractmethod
    async def close(self, timeout: float | None = None) -> None:
        """Drain (wait up to ``timeout`` s for checked-out connections; None: the config's
        ``acquire_timeout``, so close never hangs), then terminate.

        Idempotent. Afterwards every server connection of the pool is gone and
        ``acquire()`` raises PoolClosed.
        """

    async def rotate(self, password: str | PasswordProvider | None = None) -> None:
        """Replace every connection without downtime (credential change, failover, DNS).

        ``password`` (a str or a sync/async callable; None keeps the current one) is used
        for every connection opened from now on. Idle connections are closed and replaced
        (refill to min_size), checked-out ones are closed when they come back instead of
        being reused; callers keep being served throughout. Returns once the idle
        connections are replaced; PoolTimeout after ``acquire_timeout`` if new connections
        cannot be opened (the pool stays open and keeps trying with the new password).
        Adapters override it; the default refuses.
        """
        raise NotImplementedError(f"adapter {self.adapter!r} does not support rotate()")

    def stats(self) -> PoolStats:
        """The stats dict documented in :mod:`poolbridge.pool.stats`."""
        snapshot = self.recorder.snapshot()
        snapshot["connection.hook_failures"] = sum(self.hook_runner.failures.values())
        return snapshot

    async def __aenter__(self: PoolT) -> PoolT:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<{type(self).__name__} {self.name!r} adapter={self.adapter!r} {state}>"


class PoolOpener(Generic[PoolT]):
    """What ``open_pool()`` returns: ``await`` it, or use it as ``async with``."""

    def __init__(self, factory: Callable[[], Awaitable[PoolT]]) -> None:
        self._factory = factory
        self._pool: PoolT | None = None

    def __await__(self) -> Generator[Any, None, PoolT]:
        return self._factory().__await__()

    async def __aenter__(self) -> PoolT:
        self._pool = await self._factory()
        return self._pool

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._pool is not None:
            await self._pool.close()
