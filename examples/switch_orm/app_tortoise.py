"""The workload on Tortoise ORM through poolbridge.adapters.tortoise."""

from __future__ import annotations

import asyncio

from common import TABLE, WORKERS, Report, load_config
from tortoise import Tortoise, fields
from tortoise.models import Model

from poolbridge.adapters.tortoise import connect


class Item(Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=50)

    class Meta:
        table = TABLE


async def main() -> None:
    config = load_config()
    report = Report("tortoise", config)
    async with connect(config, {"models": [__name__]}, hooks=report.hooks()):
        await Tortoise.generate_schemas(safe=True)

        async def one(i: int) -> int:
            await Item.create(name=f"item-{i}")
            return 1 if await Item.get_or_none(name=f"item-{i}") is not None else 0

        read = sum(await asyncio.gather(*(one(i) for i in range(WORKERS))))
        inserted = await Item.all().count()
        await Tortoise.get_connection("default").execute_script(f"DROP TABLE {TABLE}")
    report.emit(inserted, read)


if __name__ == "__main__":
    asyncio.run(main())
