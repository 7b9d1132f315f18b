"""Minimal SQLAlchemy asyncio: a real AsyncEngine configured by a PoolConfig.

DATABASE_URL=postgresql://root@127.0.0.1:5432/test python examples/minimal_sqlalchemy.py
"""

from __future__ import annotations

import asyncio
import os

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

import poolbridge
from poolbridge.adapters.sqlalchemy import create_async_engine, handle_of, warm_up

URL = os.environ.get("DATABASE_URL", "postgresql://root@127.0.0.1:5432/test")


async def main() -> None:
    config = poolbridge.PoolConfig.from_url(URL, min_size=2, max_size=5, acquire_timeout="5s")
    engine = create_async_engine(config)  # an AsyncEngine, synchronous like SQLAlchemy's own
    await warm_up(engine)  # optional: min_size connections open now (else in the background)
    pool = handle_of(engine)  # the uniform handle: stats(), rotate(), close()
    try:
        async with engine.connect() as conn:
            print("engine.connect:", (await conn.execute(text("SELECT 1"))).scalar_one())
        async with AsyncSession(engine) as session:
            print("AsyncSession:", (await session.execute(text("SELECT 2"))).scalar_one())
        stats = pool.stats()
        print("open connections:", stats["connection.count.idle"] + stats["connection.count.used"])
    finally:
        await pool.close()


if __name__ == "__main__":
    asyncio.run(main())
