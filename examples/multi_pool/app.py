"""Primary + replica from one poolbridge.toml (named pools), each with its own limits.

python examples/multi_pool/app.py
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import poolbridge

CONFIG = Path(__file__).resolve().parent / "poolbridge.toml"
TABLE = f"pb_example_{uuid.uuid4().hex[:8]}"


async def main() -> None:
    primary_cfg = poolbridge.load("primary", path=CONFIG)
    replica_cfg = poolbridge.load("replica", path=CONFIG)
    print(f"primary: max_size={primary_cfg.max_size}; replica: max_size={replica_cfg.max_size}")
    async with (
        poolbridge.open_pool(primary_cfg, adapter="asyncpg") as primary,
        poolbridge.open_pool(replica_cfg, adapter="asyncpg") as replica,
    ):
        async with primary.acquire() as conn:
            await conn.execute(f"CREATE TABLE {TABLE} (id int)")
        try:
            async with primary.acquire() as conn:
                await conn.execute(f"INSERT INTO {TABLE} VALUES (1), (2)")
            async with replica.acquire() as conn:
                print("replica reads:", await conn.fetchval(f"SELECT count(*) FROM {TABLE}"))
                try:
                    await conn.execute(f"INSERT INTO {TABLE} VALUES (3)")
                except Exception as exc:  # asyncpg.ReadOnlySQLTransactionError
                    print("replica refuses writes:", type(exc).__name__)
        finally:
            async with primary.acquire() as conn:
                await conn.execute(f"DROP TABLE {TABLE}")
        for name, pool in (("primary", primary), ("replica", replica)):
            print(f"{name} pool: created={pool.stats()['connection.created']}")


if __name__ == "__main__":
    asyncio.run(main())
