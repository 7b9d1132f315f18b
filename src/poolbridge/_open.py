"""``open_pool()``: open a pool through the adapter named in the call; ``check_budget()``:
ask the server, through that adapter, whether the pool fits its connection budget."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal, overload

from poolbridge.adapters.registry import get_adapter
from poolbridge.config.model import PoolConfig
from poolbridge.pool.budget import (
    ServerConnections,
    over_budget,
    read_server_connections,
    warn_budget,
)
from poolbridge.pool.handle import Pool, PoolOpener
from poolbridge.pool.hooks import Hooks

if TYPE_CHECKING:  # the connection types only: no driver is imported at run time
    import aiomysql
    import aiopg
    import aiosqlite
    import asyncmy
    import asyncpg
    import psycopg
    from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["check_budget", "open_pool"]

logger = logging.getLogger("poolbridge.budget")


# One overload per built-in adapter: ``acquire()`` yields that stack's connection type.
# Tortoise and peewee-async yield the connection of whichever driver the URL selects, and a
# third-party adapter's type is unknown here: those are ``Pool[Any]``.
@overload
def open_pool(
    config: PoolConfig, adapter: Literal["sqlalchemy"], *, hooks: Hooks | None = None
) -> PoolOpener[Pool[AsyncConnection]]: ...
@overload
def open_pool(
    config: PoolConfig, adapter: Literal["psycopg"], *, hooks: Hooks | None = None
) -> PoolOpener[Pool[psycopg.AsyncConnection[Any]]]: ...
@overload
def open_pool(
    config: PoolConfig, adapter: Literal["asyncpg"], *, hooks: Hooks | None = None
) -> PoolOpener[Pool[asyncpg.Connection]]: ...
@overload
def open_pool(
    config: PoolConfig, adapter: Literal["aiopg"], *, hooks: Hooks | None = None
) -> PoolOpener[Pool[aiopg.Connection]]: ...
@overload
def open_pool(
    config: PoolConfig, adapter: Literal["aiomysql"], *, hooks: Hooks | None = None
) -> PoolOpener[Pool[aiomysql.Connection]]: ...
@overload
def open_pool(
    config: PoolConfig, adapter: Literal["asyncmy"], *, hooks: Hooks | None = None
) -> PoolOpener[Pool[asyncmy.Connection]]: ...
@overload
def open_pool(
    config: PoolConfig, adapter: Literal["aiosqlite"], *, hooks: Hooks | None = None
) -> PoolOpener[Pool[aiosqlite.Connection]]: ...
@overload
def open_pool(
    config: PoolConfig, adapter: str, *, hooks: Hooks | None = None
) -> PoolOpener[Pool[Any]]: ...


def open_pool(
    config: PoolConfig, adapter: str, *, hooks: Hooks | None = None
) -> PoolOpener[Pool[Any]]:
    """Open a pool for ``config`` through ``adapter``.

    ``pool = await open_pool(cfg, adapter="sqlalchemy")`` or
    ``async with open_pool(cfg, adapter="asyncpg") as pool: ...`` (closed on exit).
    The pool is typed by the adapter name: ``open_pool(cfg, adapter="asyncpg")`` gives a
    ``Pool[asyncpg.Connection]``, ``"sqlalchemy"`` a ``Pool[AsyncConnection]``.
    """

    async def factory() -> Pool[Any]:
        impl = get_adapter(adapter)
        impl.check_available(config)
        return await impl.open(config, hooks)

    return PoolOpener(factory)


async def check_budget(pool: Pool[Any], *, stacklevel: int = 2) -> ServerConnections | None:
    """Warn (ConnectionBudgetWarning) if the server (or the login role) has fewer free
    connections than ``pool`` may still open (``max_size`` minus the connections it holds).

    Returns what the server reported (None for SQLite, or when the server could not be
    asked: a failed check is logged and never fails the caller).
    """
    adapter = get_adapter(pool.adapter)
    try:
        async with pool.acquire() as conn:

            async def run(sql: str) -> Any:
                return await adapter.fetch_scalar(conn, sql)

            info = await read_server_connections(pool.config.backend, run)
    except Exception as exc:  # the check is advisory: never break an open()
        logger.warning("pool %r: cannot read the server's connection budget: %s", pool.name, exc)
        return None
    if info is None:
        return None
    stats = pool.stats()
    held = int(stats.get("connection.count.idle", 0)) + int(stats.get("connection.count.used", 0))
    message = over_budget(pool.config, info, held)
    if message is not None:
        warn_budget(message, stacklevel + 1, in_connect=False)
    return info
