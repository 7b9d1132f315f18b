"""The workload on peewee-async through poolbridge.adapters.peewee_async."""

from __future__ import annotations

import asyncio

import peewee
import peewee_async
from common import TABLE, WORKERS, Report, load_config

from poolbridge import open_pool

database_proxy = peewee.DatabaseProxy()


class Item(peewee_async.AioModel):
    name = peewee.CharField(max_length=50)

    class Meta:
        database = database_proxy
        table_name = TABLE


async def main() -> None:
    config = load_config()
    report = Report("peewee_async", config)
    # open_pool(adapter="peewee_async") = poolbridge.adapters.peewee_async.open_pool(config):
    # database(config) plus warm-up; pool.native is the database, pool.close() drains it
    async with open_pool(config, adapter="peewee_async", hooks=report.hooks()) as pool:
        database_proxy.initialize(pool.native)
        await Item.aio_create_table(safe=True)

        async def one(i: int) -> int:
            await Item.aio_create(name=f"item-{i}")
            return 1 if await Item.aio_get_or_none(Item.name == f"item-{i}") else 0

        read = sum(await asyncio.gather(*(one(i) for i in range(WORKERS))))
        inserted = await Item.select().aio_count()
        await Item.aio_drop_table()
    report.emit(inserted, read)


if __name__ == "__main__":
    asyncio.run(main())
