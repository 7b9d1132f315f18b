"""The engine against its floor and against the drivers' own pools, part of ``poolbridge bench``.

Two tables, each measured on every event loop of the run (asyncio's default, uvloop):

- **acquire**: microseconds per acquire + release (one task, no query) of poolbridge's
  engine (on asyncpg and on asyncmy), of a bookkeeping-free ``asyncio.Queue`` of asyncpg
  connections (the floor: no timeout, no fairness across waiters beyond the Queue's, no
  lifetime, no stats), and of asyncpg's and asyncmy's own pools;
- **scale**: 1,000 and 5,000 tasks on 10 connections, each looping acquire -> ``SELECT 1``
  -> release: throughput and the p50 / p99 / max time a task waited for its connection,
  for the engine (asyncpg, asyncmy) and asyncpg's and asyncmy's own pools. A fair pool
  keeps p99 close to p50; one that lets a releasing task take its connection straight back
  starves some waiters (a long max).

Rounds are interleaved (every pool once per round, in a shuffled order) and each pool is
opened fresh for its cell; medians and min..max over rounds are reported.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from poolbridge.cli.bench.drivers import SIZE, config, mysql_kwargs, url_for
from poolbridge.cli.bench.measure import acquire_release_us, median_spread, print_table

__all__ = [
    "ACQUIRE_POOLS",
    "SCALE_POOLS",
    "SCALE_TASKS",
    "floor_tables",
    "loop_factory",
    "queue_of_connections",
]

ACQUIRE_POOLS = ("queue", "asyncpg-pool", "engine-asyncpg", "asyncmy-pool", "engine-asyncmy")
SCALE_POOLS = ("asyncpg-pool", "engine-asyncpg", "asyncmy-pool", "engine-asyncmy")
SCALE_TASKS = (1000, 5000)

Acquire = Callable[[], AbstractAsyncContextManager[Any]]
Query = Callable[[Any], Awaitable[Any]]


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """None for asyncio's default loop; uvloop's factory for "uvloop"."""
    if name == "asyncio":
        return None
    import uvloop

    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


async def _pg_1(conn: Any) -> Any:
    return await conn.fetchval("SELECT 1")


async def _my_1(conn: Any) -> Any:
    async with conn.cursor() as cur:
        await cur.execute("SELECT 1")
        return await cur.fetchone()


@asynccontextmanager
async def queue_of_connections(url: str, size: int) -> AsyncIterator[Acquire]:
    """The bookkeeping-free floor: an asyncio.Queue of ``size`` asyncpg connections to
    ``url``; yields its acquire (closed on exit)."""
    import asyncpg

    conns = [await asyncpg.connect(url) for _ in range(size)]
    q: asyncio.Queue[Any] = asyncio.Queue()
    for c in conns:
        q.put_nowait(c)

    @asynccontextmanager
    async def take() -> AsyncIterator[Any]:
        c = await q.get()
        try:
            yield c
        finally:
            q.put_nowait(c)

    try:
        yield take
    finally:
        for c in conns:
            await c.close()


@asynccontextmanager
async def open_floor(name: str) -> AsyncIterator[tuple[Acquire, Query]]:
    """(acquire, SELECT 1 on a connection) for pool ``name`` with 10 connections."""
    if name == "queue":
        async with queue_of_connections(url_for("postgresql"), SIZE) as take:
            yield take, _pg_1
    elif name == "asyncpg-pool":
        import asyncpg

        pool = await asyncpg.create_pool(url_for("postgresql"), min_size=SIZE, max_size=SIZE)
        try:
            yield pool.acquire, _pg_1
        finally:
            await pool.close()
    elif name == "asyncmy-pool":
        import asyncmy

        kw = mysql_kwargs("database")
        mpool = await asyncmy.create_pool(minsize=SIZE, maxsize=SIZE, autocommit=True, **kw)
        try:
            yield mpool.acquire, _my_1
        finally:
            mpool.close()
            await mpool.wait_closed()
    else:
        import poolbridge

        driver = name.removeprefix("engine-")
        backend = "postgresql" if driver == "asyncpg" else "mysql"
        extra: dict[str, Any] = {}
        if backend == "mysql":
            extra["driver_options"] = {"autocommit": True}  # as the native pool has it
        cfg = dataclasses.replace(config(backend, **extra), min_size=SIZE)  # as the others
        epool = await poolbridge.open_pool(cfg, adapter=driver)
        try:
            yield epool.acquire, (_pg_1 if backend == "postgresql" else _my_1)
        finally:
            await epool.close()


async def scale_cell(
    acquire: Acquire, query: Query, tasks: int, seconds: float
) -> dict[str, float]:
    """``tasks`` loops of acquire -> query -> release for ``seconds``: ops/s and waits (ms)."""
    waits: list[float] = []
    done = 0
    stop = False
    perf = time.perf_counter

    async def worker() -> None:
        nonlocal done
        while not stop:
            t0 = perf()
            async with acquire() as conn:
                waits.append(perf() - t0)
                await query(conn)
            done += 1

    workers = [asyncio.create_task(worker()) for _ in range(tasks)]
    await asyncio.sleep(seconds / 4)  # every task queued once before counting
    waits.clear()
    start, t0 = done, perf()
    await asyncio.sleep(seconds)
    count, elapsed, sample = done - start, perf() - t0, sorted(waits)
    stop = True
    await asyncio.gather(*workers, return_exceptions=True)
    if not sample:
        return {"qps": 0.0, "p50": 0.0, "p99": 0.0, "max": 0.0}
    return {
        "qps": count / elapsed,
        "p50": sample[len(sample) // 2] * 1e3,
        "p99": sample[min(len(sample) - 1, int(len(sample) * 0.99))] * 1e3,
        "max": sample[-1] * 1e3,
    }


def _run(loop: str, coro: Awaitable[Any]) -> Any:
    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        return runner.run(coro)  # type: ignore[arg-type]


async def _acquire_us(name: str, window: float) -> float:
    async with open_floor(name) as (acquire, _):
        return await acquire_release_us(acquire, window)


async def _scale(name: str, tasks: int, window: float) -> dict[str, float]:
    async with open_floor(name) as (acquire, query):
        return await scale_cell(acquire, query, tasks, window)


def floor_tables(
    loops: list[str], rounds: int, window: float, scale_window: float, markdown: bool = False
) -> list[dict[str, Any]]:
    """Measure and print both tables on every loop; returns one record per cell."""
    rng = random.Random()
    acq: dict[tuple[str, str], list[float]] = {}
    scale: dict[tuple[str, str, int], list[dict[str, float]]] = {}
    for _ in range(rounds):
        cells: list[tuple[str, str, int]] = [
            (loop, p, 0) for loop in loops for p in ACQUIRE_POOLS
        ] + [(loop, p, n) for loop in loops for p in SCALE_POOLS for n in SCALE_TASKS]
        rng.shuffle(cells)
        for loop, pool, tasks in cells:
            if tasks == 0:
                acq.setdefault((loop, pool), []).append(_run(loop, _acquire_us(pool, window)))
            else:
                got = _run(loop, _scale(pool, tasks, scale_window))
                scale.setdefault((loop, pool, tasks), []).append(got)
    out: list[dict[str, Any]] = []
    rows = []
    for loop in loops:
        floor = statistics.median(acq[(loop, "queue")])
        for pool in ACQUIRE_POOLS:
            med, lo, hi = median_spread(acq[(loop, pool)])
            rows.append([loop, pool, f"{med:.2f}", f"{lo:.2f}..{hi:.2f}", f"{med / floor:.2f}"])
            out.append({"table": "acquire", "loop": loop, "pool": pool, "us_per_pair": med,
                        "spread": [lo, hi]})  # fmt: skip
    print("\nacquire + release, µs per pair (one task, no query; floor = asyncio.Queue)")
    print_table(["loop", "pool", "µs", "spread", "x floor"], rows, markdown=markdown)
    rows = []
    for loop in loops:
        for tasks in SCALE_TASKS:
            for pool in SCALE_POOLS:
                runs = scale[(loop, pool, tasks)]
                qps, lo, hi = median_spread(r["qps"] for r in runs)
                p50 = statistics.median(r["p50"] for r in runs)
                p99 = statistics.median(r["p99"] for r in runs)
                mx = statistics.median(r["max"] for r in runs)
                rows.append([loop, str(tasks), pool, f"{qps:.0f}", f"{lo:.0f}..{hi:.0f}",
                             f"{p50:.0f}", f"{p99:.0f}", f"{mx:.0f}",
                             f"{p99 / p50:.2f}" if p50 else "-"])  # fmt: skip
                out.append({"table": "scale", "loop": loop, "pool": pool, "tasks": tasks,
                            "qps": qps, "spread": [lo, hi], "p50_ms": p50, "p99_ms": p99,
                            "max_ms": mx})  # fmt: skip
    print(f"\nscale: N tasks on {SIZE} connections, SELECT 1 (waits in ms, medians of rounds)")
    headers = ["loop", "tasks", "pool", "qps", "spread", "p50", "p99", "max", "p99/p50"]
    print_table(headers, rows, markdown=markdown)
    return out
