"""Minimal Tortoise ORM: models on poolbridge's pool engine, configured by a PoolConfig.

DATABASE_URL=postgresql://root@127.0.0.1:5432/test python examples/minimal_tortoise.py
"""

from __future__ import annotations

import asyncio
import os
import uuid

from tortoise import Tortoise, fields
from tortoise.models import Model

import poolbridge
from poolbridge.adapters.tortoise import connect

URL = os.environ.get("DATABASE_URL", "postgresql://root@127.0.0.1:5432/test")
TABLE = f"pb_example_{uuid.uuid4().hex[:8]}"


class Note(Model):
    id = fields.IntField(primary_key=True)
    text = fields.CharField(max_length=100)

    class Meta:
        table = TABLE


async def main() -> None:
    config = poolbridge.PoolConfig.from_url(URL, max_size=4, acquire_timeout="5s")
    async with connect(config, {"models": [__name__]}) as pools:
        await Tortoise.generate_schemas(safe=True)
        try:
            await asyncio.gather(*(Note.create(text=f"note {i}") for i in range(10)))
            print("notes:", await Note.all().count())
            print("max connections:", pools["default"].stats()["connection.max"])
        finally:
            await Tortoise.get_connection("default").execute_script(f"DROP TABLE {TABLE}")


if __name__ == "__main__":
    asyncio.run(main())
