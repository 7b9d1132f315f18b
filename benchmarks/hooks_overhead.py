"""What do hooks + stats cost? SELECT 1 throughput with them on vs. off, on PostgreSQL.

Two pools run side by side on the same server, interleaved round by round (the order
alternating) so that drift on a shared machine hits both equally:

- ``bare``: no hooks, and the stats histograms switched off (the counters stay: the pool
  engine needs ``used`` to drain at close, so they are not optional);
- ``full``: all six hooks registered (trivial sync callables) and the complete stats.

Each round runs ``--seconds`` of ``SELECT 1`` per variant with N concurrent tasks (10 and
100 by default) and records the rate and the client's CPU time per statement. The cost per
round is ``1 - full/bare`` (throughput) and ``full/bare - 1`` (CPU per statement); the
script prints the medians and their spread (min..max over rounds). On a busy shared machine
the throughput spread is wide; the CPU figure and the isolated per-operation cost printed
last are the stable ones. Target: <= 3 %.

    .venv/bin/python benchmarks/hooks_overhead.py --url postgresql://root@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from _common import median_spread

from poolbridge import ConnectionEvent, Hooks, Pool, PoolConfig, open_pool
from poolbridge.core.hooks import HookRunner
from poolbridge.core.registry import get_adapter
from poolbridge.core.stats import StatsRecorder


class BareRecorder(StatsRecorder):
    """The counters the engine relies on, without histograms or listeners."""

    __slots__ = ()

    def record_created(self, seconds: float) -> None:
        self.created += 1
        self.open += 1

    def record_checkout(self, wait_seconds: float) -> None:
        self.used += 1

    def record_checkin(self, use_seconds: float) -> None:
        self.used -= 1


def noop(event: ConnectionEvent) -> None:
    """A trivial sync hook."""


ALL_HOOKS = Hooks(
    on_connect=noop,
    on_checkout=noop,
    on_checkin=noop,
    on_close=noop,
    on_timeout=noop,
    on_leak=noop,
)


async def rate(pool: Pool[Any], adapter: str, tasks: int, seconds: float) -> tuple[float, float]:
    """(SELECT 1 per second, client CPU microseconds per SELECT 1) with ``tasks`` callers.

    The CPU figure (``time.process_time``) is what hooks and stats add to; unlike the rate
    it hardly moves when other processes load the shared machine.
    """
    fetch = get_adapter(adapter).fetch_scalar
    done = 0
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            async with pool.acquire() as conn:
                await fetch(conn, "SELECT 1")
            done += 1

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    return done / (time.perf_counter() - start), (time.process_time() - cpu) / done * 1e6


async def added_cpu_per_op(n: int = 50_000) -> float:
    """Microseconds of extra CPU per acquire+release that hooks + stats add, in isolation.

    Replays what the engine adds per checkout/checkin when they are on: two events built,
    two hooks emitted, two histogram observations. Free of server and scheduling noise.
    """
    runner = HookRunner(ALL_HOOKS)
    full = StatsRecorder(min_size=1, max_size=5)
    bare = BareRecorder(min_size=1, max_size=5)

    async def with_all() -> None:
        for _ in range(n):
            full.record_checkout(0.0001)
            await runner.emit("on_checkout", ConnectionEvent("p", "a", 1, age=1.0))
            full.record_checkin(0.0002)
            await runner.emit("on_checkin", ConnectionEvent("p", "a", 1, age=1.0, held=0.0002))

    async def without() -> None:
        for _ in range(n):
            bare.record_checkout(0.0001)
            bare.record_checkin(0.0002)

    best: dict[str, float] = {}
    for _ in range(5):
        for label, fn in (("with", with_all), ("without", without)):
            t0 = time.perf_counter()
            await fn()
            best[label] = min(best.get(label, float("inf")), time.perf_counter() - t0)
    return (best["with"] - best["without"]) / n * 1e6


async def open_variant(args: argparse.Namespace, variant: str, tag: str) -> Pool[Any]:
    """A warmed-up pool: ``full`` has every hook and the stats, ``bare`` neither;
    ``hooks`` / ``stats`` have one of them (``--split``)."""
    config = PoolConfig(
        url=args.url, name=f"bench-{variant}-{tag}", min_size=args.max_size,
        max_size=args.max_size,
    )  # fmt: skip
    with_hooks = variant in ("full", "hooks")
    pool = await open_pool(config, adapter=args.adapter, hooks=ALL_HOOKS if with_hooks else None)
    if variant not in ("full", "stats"):
        pool.recorder.__class__ = BareRecorder  # same slots: switches histograms off in place
    return pool


def summary(label: str, xs: list[float]) -> str:
    med, lo, hi = median_spread(xs)
    return f"{label} median {med:+.1%} (rounds {lo:+.1%} .. {hi:+.1%})"


async def compare(args: argparse.Namespace, tasks: int, a: str, b: str) -> dict[str, Any]:
    """Rounds of variant ``b`` against ``a`` on fresh pools each round (so that no variant
    keeps a luckier set of backend processes), the order alternating."""
    rates: dict[str, list[float]] = {a: [], b: []}
    cpus: dict[str, list[float]] = {a: [], b: []}
    costs: list[float] = []
    cpu_costs: list[float] = []
    for r in range(args.rounds):
        order = (a, b) if r % 2 == 0 else (b, a)
        pools = {v: await open_variant(args, v, f"{r}{i}") for i, v in enumerate(order)}
        try:
            for v in order:
                await rate(pools[v], args.adapter, tasks, 0.2)  # warm-up
            got = {v: await rate(pools[v], args.adapter, tasks, args.seconds) for v in order}
            if "full" in pools:  # the full pool really ran its hooks and kept its histograms
                assert pools["full"].stats()["connection.use_time"]["count"] > 0
        finally:
            for pool in pools.values():
                await pool.close()
        for v, (x, c) in got.items():
            rates[v].append(x)
            cpus[v].append(c)
        costs.append(1.0 - got[b][0] / got[a][0])
        cpu_costs.append(got[b][1] / got[a][1] - 1.0)
    return {"rates": rates, "cpus": cpus, "costs": costs, "cpu_costs": cpu_costs}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql://root@127.0.0.1:5432/test")
    parser.add_argument("--adapter", default="asyncpg")
    parser.add_argument("--tasks", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--max-size", type=int, default=5)
    parser.add_argument(
        "--aa", action="store_true", help="also compare bare with bare: the noise floor"
    )
    parser.add_argument(
        "--split", action="store_true", help="also measure hooks alone and stats alone"
    )
    args = parser.parse_args()
    print(
        f"adapter={args.adapter} max_size={args.max_size} rounds={args.rounds} "
        f"x {args.seconds:g}s per variant, fresh pools per round"
    )
    cpu_per_op: dict[int, float] = {}
    for tasks in args.tasks:
        res = await compare(args, tasks, "bare", "full")
        med = {v: statistics.median(xs) for v, xs in res["rates"].items()}
        cpu = {v: statistics.median(xs) for v, xs in res["cpus"].items()}
        cpu_per_op[tasks] = cpu["bare"]
        print(
            f"tasks={tasks:>4}  throughput bare {med['bare']:.0f}/s, full {med['full']:.0f}/s "
            f"(ratio {med['full'] / med['bare']:.3f}); {summary('paired cost', res['costs'])}"
        )
        print(
            f"{'':11}client CPU per SELECT 1 bare {cpu['bare']:.1f} us, full {cpu['full']:.1f} us;"
            f" {summary('paired cost', res['cpu_costs'])}"
        )
        for part in ("stats", "hooks") if args.split else ():
            res = await compare(args, tasks, "bare", part)
            print(
                f"{'':11}{part} alone: {summary('throughput cost', res['costs'])}; "
                f"{summary('CPU cost', res['cpu_costs'])}"
            )
        if args.aa:
            aa = await compare(args, tasks, "bare", "bare2")
            print(
                f"{'':11}noise floor (bare vs bare): {summary('throughput', aa['costs'])}; "
                f"{summary('CPU', aa['cpu_costs'])}"
            )
    extra = await added_cpu_per_op()
    print(f"hooks + stats add {extra:.2f} us of CPU per acquire+release (in isolation)")
    for tasks, us in cpu_per_op.items():
        print(f"  = {extra / us:.1%} of the client CPU per SELECT 1 at tasks={tasks}")


if __name__ == "__main__":
    asyncio.run(main())
