"""Raw aiopg on poolbridge's pool engine: ``acquire()`` yields the driver's own connection.

The engine provides every pool knob (table in adapters/_engine_backed.py); the driver shim
(drivers/aiopg.py) carries the connect arguments and session settings.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ._engine_backed import EngineBackedAdapter

__all__ = ["AiopgAdapter", "adapter"]


class AiopgAdapter(EngineBackedAdapter):
    name = "aiopg"
    extra = "aiopg"
    drivers = {"postgresql": ("aiopg",)}
    shim = "poolbridge.drivers.aiopg:AiopgShim"
    modules = ("aiopg",)

    async def fetch_scalar(self, conn: Any, sql: str) -> Any:
        async with conn.cursor() as cur:
            try:
                await cur.execute(sql)
            except asyncio.CancelledError as exc:
                # aiopg turns the server's QueryCanceledError (statement_timeout) into
                # CancelledError; give the real error back unless we are being cancelled
                task = asyncio.current_task()
                cause = exc.__context__
                if task is not None and not task.cancelling() and isinstance(cause, Exception):
                    raise cause from None
                raise
            if cur.description is None:  # a statement without a result set
                return None
            row = await cur.fetchone()
        return None if row is None else row[0]


adapter = AiopgAdapter()
