"""Raw aiosqlite on poolbridge's pool engine: ``acquire()`` yields the driver's own connection.

The engine provides every pool knob (table in adapters/_engine_backed.py); the driver shim
(drivers/aiosqlite.py) carries the connect arguments and session settings.
"""

from __future__ import annotations

from typing import Any

from ._engine_backed import EngineBackedAdapter

__all__ = ["AiosqliteAdapter", "adapter"]


class AiosqliteAdapter(EngineBackedAdapter):
    name = "aiosqlite"
    extra = "aiosqlite"
    drivers = {"sqlite": ("aiosqlite",)}
    shim = "poolbridge.drivers.aiosqlite:AiosqliteShim"
    modules = ("aiosqlite",)

    async def fetch_scalar(self, conn: Any, sql: str) -> Any:
        async with conn.execute(sql) as cur:
            row = await cur.fetchone()
        return None if row is None else row[0]


adapter = AiosqliteAdapter()
