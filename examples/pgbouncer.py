"""Through pgbouncer in transaction mode: statement_cache=False, no prepared statements.

    DATABASE_URL=postgresql://root@127.0.0.1:6432/test python examples/pgbouncer.py

In transaction pooling, consecutive transactions of one client may run on different server
connections, so a prepared statement made on one is missing on the next. With
``statement_cache=False`` every adapter stops preparing named statements (asyncpg:
statement_cache_size=0 and unnamed statements; psycopg: prepare_threshold=None).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import poolbridge

URL = os.environ.get("DATABASE_URL", "postgresql://root@127.0.0.1:6432/test")


async def add_one(pool: Any, adapter: str, i: int) -> int:
    async with pool.acquire() as conn:
        if adapter == "asyncpg":
            return int(await conn.fetchval("SELECT $1::int + 1", i))
        cur = await conn.execute("SELECT %s::int + 1", (i,))
        return int((await cur.fetchone())[0])


async def main() -> None:
    config = poolbridge.PoolConfig.from_url(URL, max_size=5, statement_cache=False)
    for adapter in ("asyncpg", "psycopg"):
        async with poolbridge.open_pool(config, adapter=adapter) as pool:
            results = await asyncio.gather(*(add_one(pool, adapter, i) for i in range(200)))
            verdict = "ok" if results == [i + 1 for i in range(200)] else "WRONG"
            print(f"{adapter}: 200 parameterized queries through pgbouncer: {verdict}")


if __name__ == "__main__":
    asyncio.run(main())
