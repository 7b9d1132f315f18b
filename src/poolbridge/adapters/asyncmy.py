"""Raw asyncmy on poolbridge's pool engine: ``acquire()`` yields the driver's own connection.

The engine provides every pool knob (table in adapters/_engine_backed.py); the driver shim
(drivers/asyncmy.py) carries the connect arguments and session settings.
"""

from __future__ import annotations

from typing import Any

from ._engine_backed import EngineBackedAdapter

__all__ = ["AsyncmyAdapter", "adapter"]


class AsyncmyAdapter(EngineBackedAdapter):
    name = "asyncmy"
    extra = "asyncmy"
    drivers = {"mysql": ("asyncmy",)}
    shim = "poolbridge.drivers.asyncmy:AsyncmyShim"
    modules = ("asyncmy",)

    async def fetch_scalar(self, conn: Any, sql: str) -> Any:
        async with conn.cursor() as cur:
            await cur.execute(sql)
            row = await cur.fetchone()
        return None if row is None else row[0]


adapter = AsyncmyAdapter()
