"""The raw-driver adapters: each driver on poolbridge's own pool engine, as data.

``acquire()`` yields the driver's own connection object. The engine provides every pool knob
(the table lives in :mod:`poolbridge.adapters._engine_backed`); the driver shims
(``poolbridge.drivers.<driver>``) carry the connect arguments and session settings. An
adapter here is its name, the extra to install, the shim to use and how to run one scalar
query on the driver's connection — nothing else.

asyncpg's own Pool waits forever when exhausted, has no lifetime by age, no bounded
waiting, lets a greedy task barge ahead of waiters and sends a reset query on every
release; aiomysql's and asyncmy's pools wait forever too and recycle by idle time.
"""

from __future__ import annotations

from typing import Any

from poolbridge.adapters._engine_backed import EngineBackedAdapter
from poolbridge.adapters._glue import aiopg_real_error

__all__ = [
    "AiomysqlAdapter",
    "AiopgAdapter",
    "AiosqliteAdapter",
    "AsyncmyAdapter",
    "AsyncpgAdapter",
    "aiomysql",
    "aiopg",
    "aiosqlite",
    "asyncmy",
    "asyncpg",
]


class AsyncpgAdapter(EngineBackedAdapter):
    """Raw asyncpg on poolbridge's pool engine: ``acquire()`` yields an ``asyncpg.Connection``."""

    name = "asyncpg"
    extra = "asyncpg"
    drivers = {"postgresql": ("asyncpg",)}
    shim = "poolbridge.drivers.asyncpg:AsyncpgShim"
    modules = ("asyncpg",)

    async def fetch_scalar(self, conn: Any, sql: str) -> Any:
        return await conn.fetchval(sql)


class AiopgAdapter(EngineBackedAdapter):
    """Raw aiopg on poolbridge's pool engine: ``acquire()`` yields the driver's connection."""

    name = "aiopg"
    extra = "aiopg"
    drivers = {"postgresql": ("aiopg",)}
    shim = "poolbridge.drivers.aiopg:AiopgShim"
    modules = ("aiopg",)

    async def fetch_scalar(self, conn: Any, sql: str) -> Any:
        async with conn.cursor() as cur:
            await aiopg_real_error(cur.execute(sql))
            if cur.description is None:  # a statement without a result set
                return None
            row = await cur.fetchone()
        return None if row is None else row[0]


class _MySQLAdapter(EngineBackedAdapter):
    """aiomysql and asyncmy share their cursor API."""

    async def fetch_scalar(self, conn: Any, sql: str) -> Any:
        async with conn.cursor() as cur:
            await cur.execute(sql)
            row = await cur.fetchone()
        return None if row is None else row[0]


class AiomysqlAdapter(_MySQLAdapter):
    """Raw aiomysql on poolbridge's pool engine: ``acquire()`` yields its connection."""

    name = "aiomysql"
    extra = "aiomysql"
    drivers = {"mysql": ("aiomysql",)}
    shim = "poolbridge.drivers.aiomysql:AiomysqlShim"
    modules = ("aiomysql",)


class AsyncmyAdapter(_MySQLAdapter):
    """Raw asyncmy on poolbridge's pool engine: ``acquire()`` yields the driver's connection."""

    name = "asyncmy"
    extra = "asyncmy"
    drivers = {"mysql": ("asyncmy",)}
    shim = "poolbridge.drivers.asyncmy:AsyncmyShim"
    modules = ("asyncmy",)


class AiosqliteAdapter(EngineBackedAdapter):
    """Raw aiosqlite on poolbridge's pool engine: ``acquire()`` yields its connection."""

    name = "aiosqlite"
    extra = "aiosqlite"
    drivers = {"sqlite": ("aiosqlite",)}
    shim = "poolbridge.drivers.aiosqlite:AiosqliteShim"
    modules = ("aiosqlite",)

    async def fetch_scalar(self, conn: Any, sql: str) -> Any:
        async with conn.execute(sql) as cur:
            row = await cur.fetchone()
        return None if row is None else row[0]


asyncpg = AsyncpgAdapter()
aiopg = AiopgAdapter()
aiomysql = AiomysqlAdapter()
asyncmy = AsyncmyAdapter()
aiosqlite = AiosqliteAdapter()
