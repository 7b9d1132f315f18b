"""Tortoise ORM and peewee-async on poolbridge vs on their native pools (PostgreSQL).

Each row runs in a fresh subprocess (rows in a shuffled order each round): 50 concurrent
tasks run ``SELECT 1`` through the ORM's own query path for a fixed window, on a pool of 10
connections:

- ``tortoise-native``: Tortoise's asyncpg backend (asyncpg.Pool, waits forever when full);
- ``tortoise-poolbridge``: the same backend on poolbridge's engine
  (``poolbridge.adapters.tortoise.init``);
- ``peewee-native``: peewee-async's PostgresqlDatabase (aiopg pool);
- ``peewee-poolbridge``: ``poolbridge.adapters.peewee_async.database`` (aiopg on the engine).

    .venv/bin/python benchmarks/orm_adapters.py            # 3 rounds of 3 s windows
    .venv/bin/python benchmarks/orm_adapters.py --quick    # 1 round of 1 s windows
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from poolbridge.cli.bench.measure import interleaved, median_spread, print_table, rate, run_child

PG_URL = os.environ.get("POOLBRIDGE_TEST_PG_URL", "postgresql://root@127.0.0.1:5432/test")
SIZE = 10
TASKS = 50
ROWS = ("tortoise-native", "tortoise-poolbridge", "peewee-native", "peewee-poolbridge")


async def _measure(query: Callable[[], Awaitable[Any]], seconds: float) -> float:
    await query()  # warm
    return await rate(query, TASKS, seconds, warmup=0.2)


async def child(row: str, seconds: float) -> float:
    from poolbridge import PoolConfig

    config = PoolConfig(url=PG_URL, min_size=SIZE, max_size=SIZE, name="pb_bench_orm")
    if row.startswith("tortoise"):
        from tortoise import Tortoise

        if row == "tortoise-native":
            credentials = {"host": "127.0.0.1", "port": 5432, "user": "root",
                           "database": "test", "minsize": SIZE, "maxsize": SIZE}  # fmt: skip
            native = {"engine": "tortoise.backends.asyncpg", "credentials": credentials}
            await Tortoise.init(
                config={
                    "connections": {"default": native},
                    "apps": {"m": {"models": ["tortoise.contrib.test"]}},
                }
            )
            close: Callable[[], Awaitable[None]] = Tortoise.close_connections
        else:
            from poolbridge.adapters.tortoise import init

            pools = await init(config, {"m": ["tortoise.contrib.test"]})
            close = pools.close
        client = Tortoise.get_connection("default")
        try:
            return await _measure(lambda: client.execute_query("SELECT 1"), seconds)
        finally:
            await close()
    import peewee_async

    if row == "peewee-native":
        db = peewee_async.PostgresqlDatabase(
            "test", host="127.0.0.1", port=5432, user="root",
            pool_params={"minsize": SIZE, "maxsize": SIZE},
        )  # fmt: skip
    else:
        from poolbridge.adapters.peewee_async import database

        db = database(config)
    await db.aio_connect()
    try:
        return await _measure(lambda: db.aio_execute_sql("SELECT 1"), seconds)
    finally:
        await db.aio_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(child(args.child, args.seconds))))
        return
    rounds, seconds = (1, 1.0) if args.quick else (3, args.seconds)

    def in_child(row: str) -> float | None:
        got = run_child([sys.executable, __file__, "--child", row, "--seconds", str(seconds)])
        return None if got is None else float(got)

    results = interleaved(ROWS, rounds, in_child)  # shuffled order, a fresh process each
    print(f"SELECT 1 per second through the ORM, {TASKS} tasks, pool of {SIZE} (median)")
    print_table(
        ["row", "median", "min", "max"],
        [[row, *(f"{v:.0f}" for v in median_spread(results[row]))] for row in ROWS],
    )


if __name__ == "__main__":
    main()
