"""poolbridge-configured stacks vs the same stack configured by hand vs the raw driver pool.

Side by side in one run: every round runs every (stack, variant, concurrency) cell once, in
a shuffled order (interleaved rounds), and the median (with min..max spread) over the
rounds is reported. Pools have max_size 10; each task loops acquire -> SELECT 1 -> release
for a fixed window. ``ratio_vs_hand`` = poolbridge / hand-configured (target >= 0.98;
0.95 where poolbridge adds a knob the stack lacks), ``ratio_vs_raw`` = poolbridge / the raw
driver pool with its defaults.

    python benchmarks/bench.py [--quick] [--json bench.json] [--png bench.png]
    poolbridge bench ...          # the same
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import time
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

PG_URL = os.environ.get("POOLBRIDGE_TEST_PG_URL", "postgresql://root@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("POOLBRIDGE_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
SIZE = 10
CONCURRENCY = (1, 10, 100)

Run = Callable[[], Any]  # one acquire -> SELECT 1 -> release


@asynccontextmanager
async def _sqlalchemy(variant: str, url: str, driver: str) -> AsyncIterator[Run]:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine as sa_create

    import poolbridge
    from poolbridge.adapters.sqlalchemy import close_engine, create_async_engine, engine_kwargs

    config = poolbridge.PoolConfig(url=url, driver=driver, min_size=0, max_size=SIZE)
    if variant == "poolbridge":
        engine = await create_async_engine(config)
    elif variant == "hand":  # the equivalent native arguments, written by hand
        with warnings.catch_warnings():  # defaults plain kwargs cannot carry: said once
            warnings.simplefilter("ignore")
            kw = engine_kwargs(config)
        engine = sa_create(kw.pop("url"), **kw)
    else:  # raw: SQLAlchemy's defaults (pool_size=5, max_overflow=10)
        scheme = "postgresql" if url.startswith("postgresql") else "mysql"
        engine = sa_create(f"{scheme}+{driver}://{url.split('://', 1)[1]}")
    query = text("SELECT 1")

    async def run() -> None:
        async with engine.connect() as conn:
            await conn.execute(query)

    try:
        yield run
    finally:
        if variant == "poolbridge":
            await close_engine(engine)
        else:
            await engine.dispose()


@asynccontextmanager
async def _psycopg(variant: str) -> AsyncIterator[Run]:
    from psycopg_pool import AsyncConnectionPool

    import poolbridge

    config = poolbridge.PoolConfig(url=PG_URL, min_size=1, max_size=SIZE)
    if variant == "poolbridge":
        pool: Any = await poolbridge.open_pool(config, adapter="psycopg")
        acquire: Callable[[], AbstractAsyncContextManager[Any]] = pool.acquire
    else:
        kw = {"min_size": 1, "max_size": SIZE} if variant == "hand" else {}
        pool = AsyncConnectionPool("host=127.0.0.1 user=root dbname=test", open=False, **kw)
        await pool.open(wait=True)
        acquire = pool.connection

    async def run() -> None:
        async with acquire() as conn:
            await conn.execute("SELECT 1")

    try:
        yield run
    finally:
        await pool.close()


@asynccontextmanager
async def _asyncpg(variant: str) -> AsyncIterator[Run]:
    import asyncpg

    import poolbridge

    if variant == "poolbridge":
        pool: Any = await poolbridge.open_pool(
            poolbridge.PoolConfig(url=PG_URL, min_size=SIZE, max_size=SIZE), adapter="asyncpg"
        )
    else:  # asyncpg's own Pool is both "by hand" and "raw" (it has no more knobs to set)
        pool = await asyncpg.create_pool(PG_URL, min_size=SIZE, max_size=SIZE)

    async def run() -> None:
        async with pool.acquire() as conn:
            await conn.fetchval("SELECT 1")

    try:
        yield run
    finally:
        await pool.close()


STACKS: dict[tuple[str, str], Callable[[str], AbstractAsyncContextManager[Run]]] = {
    ("sqlalchemy[asyncpg]", "postgresql"): lambda v: _sqlalchemy(v, PG_URL, "asyncpg"),
    ("psycopg", "postgresql"): _psycopg,
    ("asyncpg", "postgresql"): _asyncpg,
    ("sqlalchemy[aiomysql]", "mysql"): lambda v: _sqlalchemy(v, MYSQL_URL, "aiomysql"),
}
VARIANTS = ("poolbridge", "hand", "raw")


async def measure(stack: tuple[str, str], variant: str, tasks: int, window: float) -> float:
    """Queries per second of ``tasks`` concurrent loops over ``window`` seconds."""
    async with STACKS[stack](variant) as run:
        for _ in range(3):
            await run()  # warm up
        done = 0
        deadline = time.perf_counter() + window

        async def loop() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                await run()
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(tasks)))
        return done / (time.perf_counter() - start)


async def bench(rounds: int, window: float, stacks: list[tuple[str, str]]) -> list[dict[str, Any]]:
    cells = [(s, v, c) for s in stacks for v in VARIANTS for c in CONCURRENCY]
    samples: dict[tuple[Any, ...], list[float]] = {cell: [] for cell in cells}
    rng = random.Random(7)
    for r in range(rounds):
        rng.shuffle(cells)
        for cell in cells:
            samples[cell].append(await measure(*cell, window))
        print(f"round {r + 1}/{rounds} done", flush=True)
    records = []
    for (name, backend), variant, conc in sorted(samples, key=str):
        if variant != "poolbridge":
            continue
        med = {v: statistics.median(samples[((name, backend), v, conc)]) for v in VARIANTS}
        values = samples[((name, backend), "poolbridge", conc)]
        records.append(
            {
                "stack": name, "backend": backend, "concurrency": conc,
                "qps": round(med["poolbridge"], 1),
                "qps_hand": round(med["hand"], 1), "qps_raw": round(med["raw"], 1),
                "ratio_vs_hand": round(med["poolbridge"] / med["hand"], 3),
                "ratio_vs_raw": round(med["poolbridge"] / med["raw"], 3),
                "spread": [round(min(values), 1), round(max(values), 1)], "rounds": rounds,
            }
        )  # fmt: skip
    return records


def print_table(records: list[dict[str, Any]]) -> None:
    head = f"{'stack':<22}{'backend':<12}{'tasks':>6}{'qps':>10}{'hand':>10}{'raw':>10}"
    print(head + f"{'vs hand':>9}{'vs raw':>8}  spread")
    for r in records:
        print(
            f"{r['stack']:<22}{r['backend']:<12}{r['concurrency']:>6}{r['qps']:>10.0f}"
            f"{r['qps_hand']:>10.0f}{r['qps_raw']:>10.0f}{r['ratio_vs_hand']:>9.2f}"
            f"{r['ratio_vs_raw']:>8.2f}  {r['spread'][0]:.0f}..{r['spread'][1]:.0f}"
        )


def plot(records: list[dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stacks = sorted({(r["stack"], r["backend"]) for r in records})
    fig, axes = plt.subplots(1, len(stacks), figsize=(4 * len(stacks), 3.5), squeeze=False)
    for ax, (name, backend) in zip(axes[0], stacks, strict=True):
        rows = [r for r in records if (r["stack"], r["backend"]) == (name, backend)]
        xs = [str(r["concurrency"]) for r in rows]
        for key, label in (("qps", "poolbridge"), ("qps_hand", "by hand"), ("qps_raw", "raw")):
            ax.plot(xs, [r[key] for r in rows], marker="o", label=label)
        ax.set_title(f"{name} ({backend})", fontsize=9)
        ax.set_xlabel("concurrent tasks")
        ax.set_ylabel("SELECT 1 / s")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1 round, short windows")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window", type=float, default=1.0, help="seconds per cell")
    parser.add_argument("--json", help="write the records to this file")
    parser.add_argument("--png", help="write a plot (matplotlib) to this file")
    parser.add_argument("--stack", action="append", help="only these stacks (by name)")
    ns = parser.parse_args(argv)
    rounds, window = (1, 0.3) if ns.quick else (max(3, ns.rounds), ns.window)
    stacks = [s for s in STACKS if not ns.stack or s[0] in ns.stack]
    records = asyncio.run(bench(rounds, window, stacks))
    print_table(records)
    if ns.json:
        with open(ns.json, "w", encoding="utf-8") as fh:
            json.dump(records, fh, indent=2)
    if ns.png:
        plot(records, ns.png)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
