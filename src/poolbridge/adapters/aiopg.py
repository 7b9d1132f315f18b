"""Raw aiopg on poolbridge's pool engine: ``acquire()`` yields the driver's own connection.

The engine provides every pool knob (table in adapters/_engine_backed.py); the driver shim
(drivers/aiopg.py) carries the connect arguments and session settings.
"""

from __future__ import annotations

from typing import Any

from ._engine_backed import EngineBackedAdapter
from ._glue import aiopg_real_error

__all__ = ["AiopgAdapter", "adapter"]


class AiopgAdapter(EngineBackedAdapter):
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


adapter = AiopgAdapter()
