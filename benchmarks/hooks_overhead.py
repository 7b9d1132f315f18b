"""What do hooks + stats cost? SELECT 1 throughput with them on vs. off, on PostgreSQL.

Two pools of the same stack run side by side:

- ``bare``: no hooks, and the stats histograms switched off (the counters stay: the pools
  need ``used`` to drain at close, so they are not optional);
- ``full``: all six hooks registered, each doing trivial sync work (counting its calls, as
  a metrics or tagging hook would), and the complete stats (three histograms).

Each round opens both pools fresh (neither keeps a luckier set of backends) and runs N
concurrent tasks of ``acquire -> SELECT 1 -> release`` in four windows of ``--seconds``,
A B B A (B A A B on odd rounds), so that load drifting on a shared machine hits both alike.
The round's cost is ``1 - rate(full) / rate(bare)``; the script prints the median over the
rounds with the quartiles and the min..max, and the same for the client's CPU time per
statement (``time.process_time``). ``--aa`` measures bare against bare: the noise floor.

Two measures that do not depend on the machine's load come last: the CPU the engine's
acquire + release costs with and without hooks + stats on a driver that does no I/O
(engine stacks), and with ``--instructions`` the client-side instructions per SELECT 1
counted by valgrind (callgrind) on the real stack, bare vs full. Target: <= 3 %.

    .venv/bin/python benchmarks/hooks_overhead.py                       # asyncpg, ~3 min
    .venv/bin/python benchmarks/hooks_overhead.py --adapter psycopg --rounds 9
    .venv/bin/python benchmarks/hooks_overhead.py --instructions --rounds 0
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from poolbridge import ConnectionEvent, Hooks, Pool, PoolConfig, open_pool
from poolbridge.adapters.registry import get_adapter
from poolbridge.engine import COMPILED
from poolbridge.engine.checkout import Engine
from poolbridge.pool.hooks import HOOK_NAMES, HookRunner
from poolbridge.pool.stats import StatsRecorder

#: stacks on poolbridge's own engine (what the no-I/O measurement applies to)
ENGINE_STACKS = ("asyncpg", "aiopg", "aiomysql", "asyncmy", "aiosqlite")


class BareRecorder(StatsRecorder):
    """The counters the pools rely on, without histograms or listeners."""

    __slots__ = ()

    def record_created(self, seconds: float) -> None:
        self.created += 1
        self.open += 1

    def record_checkout(self, wait_seconds: float) -> None:
        self.used += 1

    def record_checkin(self, use_seconds: float) -> None:
        self.used -= 1


def counting_hooks(calls: Counter[str]) -> Hooks:
    """All six hooks, each counting its calls (trivial sync work, like a metrics hook)."""

    def hook_for(name: str) -> Any:
        def hook(event: ConnectionEvent) -> None:
            calls[name] += 1

        return hook

    return Hooks(**{name: hook_for(name) for name in HOOK_NAMES})


def make_bare(recorder: StatsRecorder) -> None:
    # A compiled StatsRecorder (the mypyc build) is a native class: no Python subclass can
    # take its place, so the "bare" variant exists on the pure-Python build only.
    if COMPILED:
        raise SystemExit(
            "hooks_overhead.py measures the pure-Python build: its bare variant swaps the "
            "stats recorder's class, which a compiled (mypyc) StatsRecorder refuses. Run it "
            "with PYTHONPATH=src (poolbridge --version names the build)."
        )
    recorder.__class__ = BareRecorder  # same slots: switches the histograms off in place


async def open_variant(args: argparse.Namespace, variant: str, tag: str) -> Pool[Any]:
    config = PoolConfig(
        url=args.url, name=f"hooks-bench-{variant}-{tag}", min_size=args.max_size,
        max_size=args.max_size,
    )  # fmt: skip
    calls: Counter[str] = Counter()
    hooks = counting_hooks(calls) if variant == "full" else None
    pool = await open_pool(config, adapter=args.adapter, hooks=hooks)
    pool.calls = calls  # type: ignore[attr-defined]
    if variant != "full":
        make_bare(pool.recorder)
    return pool


async def window(
    pool: Pool[Any], adapter: str, tasks: int, seconds: float
) -> tuple[int, float, float]:
    """(statements, seconds, client CPU seconds) of ``tasks`` loops over one window."""
    fetch = get_adapter(adapter).fetch_scalar
    done = 0
    stop = False

    async def worker() -> None:
        nonlocal done
        while not stop:
            async with pool.acquire() as conn:
                await fetch(conn, "SELECT 1")
            done += 1

    t0, c0 = time.perf_counter(), time.process_time()
    workers = [asyncio.create_task(worker()) for _ in range(tasks)]
    await asyncio.sleep(seconds)
    stop = True
    await asyncio.gather(*workers)
    return done, time.perf_counter() - t0, time.process_time() - c0


async def compare(args: argparse.Namespace, tasks: int, a: str, b: str) -> dict[str, Any]:
    """Rounds of ``b`` against ``a``: fresh pools, windows A B B A / B A A B."""
    out: dict[str, Any] = {
        "rate": {a: [], b: []},
        "cpu": {a: [], b: []},
        "cost": [],
        "cpu_cost": [],
    }
    for r in range(args.rounds):
        first, second = (a, b) if r % 2 == 0 else (b, a)
        pools = {v: await open_variant(args, v, f"{tasks}-{r}") for v in (first, second)}
        acc = {v: [0, 0.0, 0.0] for v in pools}
        try:
            for v in pools:
                await window(pools[v], args.adapter, tasks, 0.2)  # warm-up
            for v in (first, second, second, first):
                n, secs, cpu = await window(pools[v], args.adapter, tasks, args.seconds)
                acc[v][0] += n
                acc[v][1] += secs
                acc[v][2] += cpu
            if "full" in pools:  # the hooks really ran, once per checkout and checkin
                calls = pools["full"].calls  # type: ignore[attr-defined]
                used = pools["full"].stats()["connection.use_time"]["count"]
                assert calls["on_checkout"] == calls["on_checkin"] == used > 0, (calls, used)
        finally:
            for pool in pools.values():
                await pool.close()
        rate = {v: n / secs for v, (n, secs, _) in acc.items()}
        cpu = {v: c / n * 1e6 for v, (n, _, c) in acc.items()}
        for v in pools:
            out["rate"][v].append(rate[v])
            out["cpu"][v].append(cpu[v])
        out["cost"].append(1.0 - rate[b] / rate[a])
        out["cpu_cost"].append(cpu[b] / cpu[a] - 1.0)
    return out


def spread(xs: list[float]) -> str:
    """Median, quartiles and min..max of per-round costs."""
    if len(xs) < 2:
        return f"{xs[0]:+.1%} (1 round)" if xs else "n/a"
    q1, med, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    return (
        f"median {med:+.1%} (quartiles {q1:+.1%} .. {q3:+.1%}; "
        f"rounds {min(xs):+.1%} .. {max(xs):+.1%}, n={len(xs)})"
    )


# -- load-independent measures ----------------------------------------------------------


class NullDriver:
    """A DriverShim that does no I/O: what is left is the engine's own work."""

    name = "null"
    backend = "postgresql"

    def __init__(self) -> None:
        self.n = 0

    async def connect(self, config: Any, timeout: float) -> Any:
        self.n += 1
        return object()

    async def close(self, conn: Any) -> None:
        pass

    def terminate(self, conn: Any) -> None:
        pass

    async def ping(self, conn: Any) -> None:
        pass

    def in_transaction(self, conn: Any) -> bool | None:
        return False

    def is_closed(self, conn: Any) -> bool:
        return False

    async def rollback(self, conn: Any) -> None:
        pass

    async def full_reset(self, conn: Any) -> bool:
        return True

    async def server_id(self, conn: Any) -> int | str:
        return self.n

    def is_connection_error(self, exc: BaseException) -> bool:
        return False


async def engine_us(variant: str, n: int) -> float:
    """Client CPU microseconds per acquire + release of the engine on the null driver."""
    config = PoolConfig(url="postgresql://bench@127.0.0.1:1/bench", name=f"null-{variant}",
                     min_size=1, max_size=1)  # fmt: skip
    calls: Counter[str] = Counter()
    recorder = StatsRecorder(min_size=1, max_size=1)
    if variant != "full":
        make_bare(recorder)
    runner = HookRunner(counting_hooks(calls) if variant == "full" else Hooks())
    engine = Engine(config, NullDriver(), adapter="null", hooks=runner, recorder=recorder)  # type: ignore[arg-type]
    await engine.open()
    try:
        c0 = time.process_time()
        for _ in range(n):
            async with engine.acquire():
                pass
        return (time.process_time() - c0) / n * 1e6
    finally:
        await engine.close()


async def isolated(n: int = 50_000, repeats: int = 7) -> tuple[float, float]:
    """(bare, full) best-of-``repeats`` µs per engine acquire + release, interleaved."""
    best = {"bare": float("inf"), "full": float("inf")}
    for r in range(repeats):
        for v in ("bare", "full") if r % 2 == 0 else ("full", "bare"):
            best[v] = min(best[v], await engine_us(v, n))
    return best["bare"], best["full"]


def child(args: argparse.Namespace, variant: str, n: int) -> None:
    """``--child``: exactly ``n`` SELECT 1 by ``args.tasks[0]`` tasks on a fresh pool."""

    async def main() -> None:
        pool = await open_variant(args, variant, "cg")
        fetch = get_adapter(args.adapter).fetch_scalar
        left = n

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                async with pool.acquire() as conn:
                    await fetch(conn, "SELECT 1")

        try:
            await asyncio.gather(*(worker() for _ in range(args.tasks[0])))
        finally:
            await pool.close()

    asyncio.run(main())


def instructions(
    args: argparse.Namespace, tasks: int, n1: int = 1000, n2: int = 6000
) -> dict[str, float]:
    """Client instructions per SELECT 1 under callgrind: (count(n2) - count(n1)) / (n2 - n1),
    so that imports, opening and closing cancel out."""
    out: dict[str, float] = {}
    for variant in ("bare", "full"):
        counts = []
        for n in (n1, n2):
            with tempfile.TemporaryDirectory() as tmp:
                dump = Path(tmp) / "callgrind.out"
                cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={dump}",
                       sys.executable, __file__, "--child", variant, str(n), "--url", args.url,
                       "--adapter", args.adapter, "--tasks", str(tasks),
                       "--max-size", str(args.max_size)]  # fmt: skip
                subprocess.run(cmd, check=True, capture_output=True, timeout=900)
                m = re.search(r"^(?:summary|totals): (\d+)", dump.read_text(errors="replace"), re.M)
                assert m, "no instruction total in the callgrind output"
                counts.append(int(m.group(1)))
        out[variant] = (counts[1] - counts[0]) / (n2 - n1)
    return out


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--url", default="postgresql://root@127.0.0.1:5432/test")
    parser.add_argument(
        "--adapter", default="asyncpg", help="any stack: asyncpg, psycopg, sqlalchemy, ..."
    )
    parser.add_argument("--tasks", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--seconds", type=float, default=0.5, help="per window (4 per round)")
    parser.add_argument("--max-size", type=int, default=5)
    parser.add_argument("--aa", action="store_true", help="also bare vs bare: the noise floor")
    parser.add_argument(
        "--instructions", action="store_true", help="also count client instructions (valgrind)"
    )
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "N"), help=argparse.SUPPRESS)
    return parser.parse_args()


async def main(args: argparse.Namespace) -> None:
    print(f"adapter={args.adapter} max_size={args.max_size} rounds={args.rounds} x 4 windows "
          f"of {args.seconds:g} s, fresh pools per round")  # fmt: skip
    cpu_bare: dict[int, float] = {}
    for tasks in args.tasks if args.rounds else ():
        res = await compare(args, tasks, "bare", "full")
        rate = {v: statistics.median(xs) for v, xs in res["rate"].items()}
        cpu = {v: statistics.median(xs) for v, xs in res["cpu"].items()}
        cpu_bare[tasks] = cpu["bare"]
        print(f"tasks={tasks:>4}  SELECT 1/s bare {rate['bare']:,.0f}, full {rate['full']:,.0f}; "
              f"throughput cost {spread(res['cost'])}")  # fmt: skip
        print(f"{'':12}client CPU per SELECT 1 bare {cpu['bare']:.1f} us, "
              f"full {cpu['full']:.1f} us; CPU cost {spread(res['cpu_cost'])}")  # fmt: skip
        if args.aa:
            aa = await compare(args, tasks, "bare", "bare2")
            print(f"{'':12}noise floor (bare vs bare): throughput {spread(aa['cost'])}; "
                  f"CPU {spread(aa['cpu_cost'])}")  # fmt: skip
    if args.adapter not in ENGINE_STACKS:  # psycopg_pool / SQLAlchemy pools: not the engine
        cpu_bare = {}
    bare_us, full_us = await isolated()
    print(f"engine acquire+release on a no-I/O driver: bare {bare_us:.2f} us, "
          f"full {full_us:.2f} us (+{full_us - bare_us:.2f} us of CPU)")  # fmt: skip
    for tasks, us in cpu_bare.items():
        print(f"  = {(full_us - bare_us) / us:.1%} of the client CPU per SELECT 1 at tasks={tasks}")
    if args.instructions:
        if shutil.which("valgrind") is None:
            print("--instructions: valgrind is not installed")
            return
        for tasks in args.tasks:
            ins = instructions(args, tasks)
            print(f"client instructions per SELECT 1 at tasks={tasks} (callgrind): "
                  f"bare {ins['bare']:,.0f}, full {ins['full']:,.0f} "
                  f"({ins['full'] / ins['bare'] - 1:+.1%})")  # fmt: skip


if __name__ == "__main__":
    ARGS = parse()
    if ARGS.child:
        child(ARGS, ARGS.child[0], int(ARGS.child[1]))
    else:
        asyncio.run(main(ARGS))
