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


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql://root@127.0.0.1:5432/test")
    parser.add_argument("--adapter", default="asyncpg")
    parser.add_argument("--tasks", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--max-size", type=int, default=5)
    args = parser.parse_args()

    def config(name: str) -> PoolConfig:
        return PoolConfig(url=args.url, name=name, min_size=args.max_size, max_size=args.max_size)

    async with (
        open_pool(config("bench-bare"), adapter=args.adapter) as bare,
        open_pool(config("bench-full"), adapter=args.adapter, hooks=ALL_HOOKS) as full,
    ):
        bare.recorder.__class__ = BareRecorder  # same slots: switches histograms off in place
        pools = {"bare": bare, "full": full}
        print(f"adapter={args.adapter} max_size={args.max_size} rounds={args.rounds} "
              f"x {args.seconds:g}s per variant")
        per_op: dict[int, float] = {}
        for tasks in args.tasks:
            await rate(bare, args.adapter, tasks, 0.3)  # warm-up
            await rate(full, args.adapter, tasks, 0.3)
            rates: dict[str, list[float]] = {"bare": [], "full": []}
            cpus: dict[str, list[float]] = {"bare": [], "full": []}
            costs: list[float] = []
            cpu_costs: list[float] = []
            for r in range(args.rounds):
                order = ("bare", "full") if r % 2 == 0 else ("full", "bare")
                got = {v: await rate(pools[v], args.adapter, tasks, args.seconds) for v in order}
                for v, (x, c) in got.items():
                    rates[v].append(x)
                    cpus[v].append(c)
                costs.append(1.0 - got["full"][0] / got["bare"][0])
                cpu_costs.append(got["full"][1] / got["bare"][1] - 1.0)
            med = {v: statistics.median(xs) for v, xs in rates.items()}
            cpu = {v: statistics.median(xs) for v, xs in cpus.items()}
            per_op[tasks] = cpu["bare"]
            print(
                f"tasks={tasks:>4}  throughput: bare {med['bare']:.0f}/s, full {med['full']:.0f}/s,"
                f" ratio {med['full'] / med['bare']:.3f}; paired cost median "
                f"{statistics.median(costs):+.1%} (rounds {min(costs):+.1%} .. {max(costs):+.1%})"
            )
            print(
                f"{'':11}client CPU per SELECT 1: bare {cpu['bare']:.1f} us, full "
                f"{cpu['full']:.1f} us; paired cost median {statistics.median(cpu_costs):+.1%} "
                f"(rounds {min(cpu_costs):+.1%} .. {max(cpu_costs):+.1%})"
            )
        extra = await added_cpu_per_op()
        print(f"hooks + stats add {extra:.2f} us of CPU per acquire+release (in isolation)")
        for tasks, us in per_op.items():
            print(f"  = {extra / us:.1%} of the client CPU per SELECT 1 at tasks={tasks}")
        # the full pool really ran its hooks and kept its histograms
        assert full.stats()["connection.use_time"]["count"] > 0
        assert bare.stats()["connection.use_time"]["count"] == 0


if __name__ == "__main__":
    asyncio.run(main())
