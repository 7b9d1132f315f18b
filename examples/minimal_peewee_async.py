"""Minimal peewee-async 2.x: a database whose pool backend is poolbridge's pool engine.

DATABASE_URL=postgresql://root@127.0.0.1:5432/test python examples/minimal_peewee_async.py
"""

from __future__ import annotations

import asyncio
import os
import uuid

import peewee
import peewee_async

import poolbridge
from poolbridge.adapters.peewee_async import database, handle_of

URL = os.environ.get("DATABASE_URL", "postgresql://root@127.0.0.1:5432/test")
db = database(poolbridge.PoolConfig.from_url(URL, max_size=4, acquire_timeout="5s"))


class Note(peewee_async.AioModel):
    text = peewee.CharField(max_length=100)

    class Meta:
        database = db
        table_name = f"pb_example_{uuid.uuid4().hex[:8]}"


async def main() -> None:
    await Note.aio_create_table()
    try:
        await asyncio.gather(*(Note.aio_create(text=f"note {i}") for i in range(10)))
        print("notes:", await Note.select().aio_count())
    finally:
        await Note.aio_drop_table()
        # the uniform handle of the database: stats(), rotate(), close() (drains first)
        await handle_of(db).close(timeout=5)


if __name__ == "__main__":
    asyncio.run(main())
