"""Tortoise ORM and peewee-async on poolbridge vs on their native pools (PostgreSQL).

Each row runs in a fresh subprocess: 50 concurrent tasks run ``SELECT 1`` through the ORM's
own query path for a fixed window, on a pool of 10 connections:

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
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

PG_URL = os.environ.get("POOLBRIDGE_TEST_PG_URL", "postgresql://root@127.0.0.1:5432/test")
SIZE = 10
TASKS = 50
ROWS = ("tortoise-native", "tortoise-poolbridge", "peewee-native", "peewee-poolbridge")


async def _measure(query: Callable[[], Awaitable[Any]], seconds: float) -> float:
    done = 0
    stop = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal done
        while time.monotonic() < stop:
            await query()
            done += 1

    await query()  # warm
    t0 = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(TASKS)))
    return done / (time.monotonic() - t0)


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
    results: dict[str, list[float]] = {row: [] for row in ROWS}
    for _ in range(rounds):
        for row in ROWS:
            out = subprocess.run(
                [sys.executable, __file__, "--child", row, "--seconds", str(seconds)],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            results[row].append(float(out.stdout.strip().splitlines()[-1]))
    print(f"SELECT 1 per second through the ORM, {TASKS} tasks, pool of {SIZE} (median)")
    for row in ROWS:
        vals = results[row]
        print(f"  {row:22s} {statistics.median(vals):9.0f}  ({min(vals):.0f}..{max(vals):.0f})")


if __name__ == "__main__":
    main()
