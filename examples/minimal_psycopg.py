"""Minimal psycopg: psycopg_pool's AsyncConnectionPool configured by a PoolConfig.

DATABASE_URL=postgresql://root@127.0.0.1:5432/test python examples/minimal_psycopg.py
"""

from __future__ import annotations

import asyncio
import os

import poolbridge

URL = os.environ.get("DATABASE_URL", "postgresql://root@127.0.0.1:5432/test")


async def main() -> None:
    config = poolbridge.PoolConfig.from_url(URL, min_size=2, max_size=5, name="minimal_psycopg")
    async with poolbridge.open_pool(config, adapter="psycopg") as pool:
        async with pool.acquire() as conn:  # a psycopg.AsyncConnection
            cur = await conn.execute("SELECT current_setting('application_name')")
            print("application_name:", (await cur.fetchone())[0])
        print("native pool:", type(pool.native).__name__)  # psycopg_pool.AsyncConnectionPool
        print("idle connections:", pool.stats()["connection.count.idle"])


if __name__ == "__main__":
    asyncio.run(main())
