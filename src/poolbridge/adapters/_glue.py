"""Small pieces of adapter glue that several adapters need (written once here, since
adapters never import each other). Imports no ORM and no driver.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from time import monotonic
from typing import Any, Protocol, TypeVar

from poolbridge.adapters.base import Adapter
from poolbridge.pool.handle import Pool

__all__ = ["aiopg_real_error", "open_or_close", "ping_select_one"]


class _Closable(Protocol):
    async def close(self, timeout: float | None = None) -> None: ...


ClosableT = TypeVar("ClosableT", bound=_Closable)


async def ping_select_one(pool: Pool[Any], adapter: Adapter) -> float:
    """``Pool.ping()`` for an ORM-backed pool: one ``SELECT 1`` on a connection checked out
    of ``pool``, run through ``adapter.fetch_scalar``; returns the seconds it took."""
    t0 = monotonic()
    async with pool.acquire() as conn:
        await adapter.fetch_scalar(conn, "SELECT 1")
    return monotonic() - t0


async def open_or_close(pool: ClosableT, warm_up: Awaitable[object]) -> ClosableT:
    """Await ``warm_up`` (open the ORM's pool to min_size now); if it fails or is
    cancelled, close ``pool`` at once (``timeout=0``: nothing is checked out yet) so no
    connection outlives the failed open, and re-raise."""
    try:
        await warm_up
    except BaseException:
        await pool.close(timeout=0)
        raise
    return pool


async def aiopg_real_error(awaitable: Awaitable[Any]) -> Any:
    """Await ``awaitable``, undoing an aiopg quirk: aiopg turns the server's
    QueryCanceledError (statement_timeout) into CancelledError. Give the real error back
    unless this task is really being cancelled."""
    try:
        return await awaitable
    except asyncio.CancelledError as exc:
        task = asyncio.current_task()
        cause = exc.__context__
        if task is not None and not task.cancelling() and isinstance(cause, Exception):
            raise cause from None
        raise
