"""Minimal asyncpg: raw asyncpg connections from poolbridge's pool engine.

DATABASE_URL=postgresql://root@127.0.0.1:5432/test python examples/minimal_asyncpg.py
"""

from __future__ import annotations

import asyncio
import os

import poolbridge

URL = os.environ.get("DATABASE_URL", "postgresql://root@127.0.0.1:5432/test")


async def main() -> None:
    config = poolbridge.PoolConfig.from_url(URL, max_size=3, acquire_timeout="1s")
    async with poolbridge.open_pool(config, adapter="asyncpg") as pool:
        async with pool.acquire() as conn:  # an asyncpg.Connection
            print("SELECT 1 ->", await conn.fetchval("SELECT 1"))
        # every connection busy: the next caller gets PoolTimeout after acquire_timeout
        async with pool.acquire(), pool.acquire(), pool.acquire():
            try:
                async with pool.acquire():
                    pass
            except poolbridge.PoolTimeout as exc:
                print("PoolTimeout:", str(exc).splitlines()[0])
        print("timeouts:", pool.stats()["connection.timeouts"])


if __name__ == "__main__":
    asyncio.run(main())
