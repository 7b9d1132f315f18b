"""poolbridge's pool engine against the drivers' own pools, side by side in one run.

Every measurement runs in a FRESH subprocess (no warm caches or leftover connections
shared between pools); rounds are interleaved (each round runs every measurement once, in
a shuffled order) so that drift on a shared machine hits every pool alike. Reported: the
median and the spread (min..max) over rounds, then the ratios docs/performance.md sets
targets for.

Measurements, all with a pool of 10 connections:

- ``qps@10`` / ``qps@100``: SELECT 1 per second with 10 / 100 concurrent tasks, each doing
  acquire -> SELECT 1 -> release in a loop;
- ``acq_us``: one task doing acquire + release (no query): microseconds per pair.

Pools: ``queue`` (an asyncio.Queue holding 10 open asyncpg connections: a floor, not a
fair pool), ``asyncpg`` (Pool defaults: a reset query on every release), ``asyncpg-noreset``
(Pool with a no-op ``reset=``), ``engine-asyncpg``; ``aiomysql`` vs ``engine-aiomysql``;
``asyncmy`` vs ``engine-asyncmy``.

    .venv/bin/python benchmarks/engine.py            # 3 rounds, ~2 minutes
    .venv/bin/python benchmarks/engine.py --quick    # 1 round, short windows
    .venv/bin/python benchmarks/engine.py --profile engine-asyncpg:acq_us
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from poolbridge.cli.bench.floor import queue_of_connections
from poolbridge.cli.bench.measure import (
    acquire_release_us,
    interleaved,
    median_spread,
    rate,
    run_child,
)
from poolbridge.engine.build import build_name

PG_URL = os.environ.get("POOLBRIDGE_TEST_PG_URL", "postgresql://root@127.0.0.1:5432/test")
MYSQL = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": "", "db": "test"}
SIZE = 10

POOLS = (
    "queue",
    "asyncpg",
    "asyncpg-noreset",
    "engine-asyncpg",
    "aiomysql",
    "engine-aiomysql",
    "asyncmy",
    "engine-asyncmy",
)
METRICS = ("qps@10", "qps@100", "acq_us")

Acquire = Callable[[], AbstractAsyncContextManager[Any]]


# -- the pools (child side) -------------------------------------------------------------
@asynccontextmanager
async def open_pool(name: str) -> AsyncIterator[tuple[Acquire, Callable[[Any], Any]]]:
    """Yield (acquire, run SELECT 1 on a connection) for pool ``name``; close on exit."""
    if name == "queue":
        async with queue_of_connections(PG_URL, SIZE) as acquire:
            yield acquire, lambda c: c.fetchval("SELECT 1")
    elif name in ("asyncpg", "asyncpg-noreset"):
        import asyncpg

        kw: dict[str, Any] = {}
        if name == "asyncpg-noreset":

            async def noop(conn: Any) -> None:
                return None

            kw["reset"] = noop
        pool = await asyncpg.create_pool(PG_URL, min_size=SIZE, max_size=SIZE, **kw)
        try:
            yield pool.acquire, lambda c: c.fetchval("SELECT 1")
        finally:
            await pool.close()
    elif name in ("aiomysql", "asyncmy"):
        mod: Any = __import__(name)
        mkw = dict(MYSQL)
        if name == "asyncmy":
            mkw["database"] = mkw.pop("db")
        pool = await mod.create_pool(minsize=SIZE, maxsize=SIZE, **mkw)
        try:
            yield pool.acquire, mysql_select_1
        finally:
            pool.close()
            await pool.wait_closed()
    elif name.startswith("engine-"):
        from poolbridge import PoolConfig
        from poolbridge.adapters.registry import get_adapter

        driver = name.removeprefix("engine-")
        url = PG_URL if driver == "asyncpg" else "mysql://root@127.0.0.1:3306/test"
        config = PoolConfig(url=url, min_size=SIZE, max_size=SIZE, name="bench-engine")
        adapter = get_adapter(driver)
        epool = await adapter.open(config)
        run = (lambda c: c.fetchval("SELECT 1")) if driver == "asyncpg" else mysql_select_1
        try:
            yield epool.acquire, run
        finally:
            await epool.close()
    else:
        raise SystemExit(f"unknown pool {name!r}")


async def mysql_select_1(conn: Any) -> Any:
    async with conn.cursor() as cur:
        await cur.execute("SELECT 1")
        return (await cur.fetchone())[0]


async def measure(pool: str, metric: str, seconds: float) -> float:
    async with open_pool(pool) as (acquire, run):
        if metric == "acq_us":
            return await acquire_release_us(acquire, seconds, warmup=2000)
        tasks = int(metric.split("@")[1])

        async def op() -> None:
            async with acquire() as conn:
                await run(conn)

        return await rate(op, tasks, seconds, warmup=min(0.3, seconds / 3))


def child(pool: str, metric: str, seconds: float, profile: bool) -> None:
    if profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        value = asyncio.run(measure(pool, metric, seconds))
        prof.disable()
        pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    else:
        value = asyncio.run(measure(pool, metric, seconds))
    print(json.dumps({"value": value}))


# -- the driver (parent side) ----------------------------------------------------------
def measure_in_child(cell: tuple[str, str], seconds: float) -> float | None:
    """One measurement in a fresh process (no warm caches shared between pools)."""
    pool, metric = cell
    got = run_child([sys.executable, __file__, "--child", pool, metric, "--seconds", str(seconds)])
    return None if got is None else float(got["value"])


def fmt(values: list[float], metric: str) -> str:
    if not values:
        return "n/a"
    med, lo, hi = median_spread(values)
    if metric == "acq_us":
        return f"{med:.2f} ({lo:.2f}..{hi:.2f})"
    return f"{med:,.0f} ({lo:,.0f}..{hi:,.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round, 0.5 s windows")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--pools", default=",".join(POOLS))
    parser.add_argument("--child", nargs=2, metavar=("POOL", "METRIC"), help=argparse.SUPPRESS)
    parser.add_argument("--profile", metavar="POOL:METRIC", help="cProfile one measurement")
    parser.add_argument("--json", metavar="PATH", help="write raw results as JSON")
    args = parser.parse_args()
    seconds = args.seconds or (0.5 if args.quick else 1.0)
    if args.child:
        child(args.child[0], args.child[1], seconds, profile=False)
        return
    if args.profile:
        pool, metric = args.profile.split(":")
        child(pool, metric, seconds, profile=True)
        return
    rounds = args.rounds or (1 if args.quick else 3)
    pools = [p for p in args.pools.split(",") if p]
    plan = [(p, m) for p in pools for m in METRICS]
    t_start = time.perf_counter()
    print(f"{rounds} round(s) of {len(plan)} measurements, fresh process each")
    print(f"pool engine: {build_name()}")
    results = interleaved(plan, rounds, lambda cell: measure_in_child(cell, seconds))
    print(f"\n{rounds} round(s), {seconds:g} s windows, {time.perf_counter() - t_start:.0f} s")
    print(f"\n| pool | {' | '.join(METRICS)} |\n|---|" + "---:|" * len(METRICS))
    for pool in pools:
        cells = [fmt(results[(pool, m)], m) for m in METRICS]
        print(f"| {pool} | {' | '.join(cells)} |")

    def med(pool: str, metric: str) -> float | None:
        values = results.get((pool, metric)) or []
        return statistics.median(values) if values else None

    checks = [
        ("engine-asyncpg", "asyncpg", ">= 1.0 (context)"),
        ("engine-asyncpg", "asyncpg-noreset", ">= 1.3"),
        ("engine-asyncpg", "queue", ">= 0.7"),
        ("engine-aiomysql", "aiomysql", ">= 1.0"),
        ("engine-asyncmy", "asyncmy", ">= 0.9"),
        ("queue", "asyncpg", "(floor)"),
        ("asyncpg-noreset", "asyncpg", "(context)"),
    ]
    print("\n| ratio | qps@10 | qps@100 | target |\n|---|---:|---:|---|")
    for a, b, target in checks:
        cells = []
        for metric in ("qps@10", "qps@100"):
            x, y = med(a, metric), med(b, metric)
            cells.append(f"{x / y:.2f}x" if x and y else "n/a")
        print(f"| {a} / {b} | {cells[0]} | {cells[1]} | {target} |")
    print("\n| pool | acquire+release us (median) | target |\n|---|---:|---|")
    for pool in pools:
        us = med(pool, "acq_us")
        target = "<= 3" if pool == "engine-asyncpg" else ""
        print(f"| {pool} | {us:.2f} | {target} |" if us else f"| {pool} | n/a | |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({f"{p}:{m}": v for (p, m), v in results.items()}, fh, indent=1)


if __name__ == "__main__":
    main()
