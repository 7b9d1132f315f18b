"""A pool that is never opened: lets the plugin read an adapter's entry point names at
collection time (``Adapter.entry_points(pool)`` builds closures; it must not use the pool)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

from poolbridge.config.model import PoolConfig
from poolbridge.pool.handle import Pool

__all__ = ["PlaceholderPool"]


class _NotOpened:
    """Stands in for the native object; closures may hold it, nothing may use it."""

    def __repr__(self) -> str:
        return "<not opened>"


_NOT_OPENED = _NotOpened()


class PlaceholderPool(Pool[Any]):
    """Every operation raises: only its identity is meant to be used."""

    def __init__(self) -> None:
        super().__init__(PoolConfig(url="sqlite://"), adapter="placeholder")

    @property
    def native(self) -> Any:
        return _NOT_OPENED

    @property
    def closed(self) -> bool:
        return True

    def acquire(self) -> AbstractAsyncContextManager[Any]:
        raise RuntimeError("placeholder pool: not opened")

    async def ping(self) -> float:
        raise RuntimeError("placeholder pool: not opened")

    async def close(self, timeout: float | None = None) -> None:
        return None
