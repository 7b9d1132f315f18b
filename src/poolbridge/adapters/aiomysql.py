"""Raw aiomysql on poolbridge's pool engine: ``acquire()`` yields the driver's own connection.

The engine provides every pool knob (table in adapters/_engine_backed.py); the driver shim
(drivers/aiomysql.py) carries the connect arguments and session settings.
"""

from __future__ import annotations

from typing import Any

from ._engine_backed import EngineBackedAdapter

__all__ = ["AiomysqlAdapter", "adapter"]


class AiomysqlAdapter(EngineBackedAdapter):
    name = "aiomysql"
    extra = "aiomysql"
    drivers = {"mysql": ("aiomysql",)}
    shim = "poolbridge.drivers.aiomysql:AiomysqlShim"
    modules = ("aiomysql",)

    async def fetch_scalar(self, conn: Any, sql: str) -> Any:
        async with conn.cursor() as cur:
            await cur.execute(sql)
            row = await cur.fetchone()
        return None if row is None else row[0]


adapter = AiomysqlAdapter()
