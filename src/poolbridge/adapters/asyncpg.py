"""Raw asyncpg on poolbridge's pool engine: ``acquire()`` yields an ``asyncpg.Connection``.

asyncpg's own Pool waits forever when exhausted, has no lifetime by age, no bounded
waiting, lets a greedy task barge ahead of waiters and sends a reset query on every
release; the engine provides all of it (see adapters/_engine_backed.py for the table).
"""

from __future__ import annotations

from typing import Any

from ._engine_backed import EngineBackedAdapter

__all__ = ["AsyncpgAdapter", "adapter"]


class AsyncpgAdapter(EngineBackedAdapter):
    name = "asyncpg"
    extra = "asyncpg"
    drivers = {"postgresql": ("asyncpg",)}
    shim = "poolbridge.drivers.asyncpg:AsyncpgShim"
    modules = ("asyncpg",)

    async def fetch_scalar(self, conn: Any, sql: str) -> Any:
        return await conn.fetchval(sql)


adapter = AsyncpgAdapter()
