"""Client-side CPU instructions per operation of a bench cell, poolbridge vs hand (valgrind).

Wall-clock ratios on a shared 2-core machine swing by 2x between rounds (see
docs/performance.md), far more than the 2..5 % its targets are about. The number of
instructions the client process executes per operation does not depend on what else runs
on the machine, so it attributes a few percent reliably. Each variant runs the cell's
operation N1 and N2 times in a fresh process under ``valgrind --tool=callgrind`` (no
per-function data, only the total), and the per-operation cost is the difference divided
by N2 - N1: imports, pool opening and teardown cancel out. The server's work is not
counted (another process), nor is time spent waiting for it.

    python benchmarks/instructions.py 'sqlalchemy[asyncpg]:select1:100'
    python benchmarks/instructions.py psycopg:acquire:1 --n 300 3300
    python benchmarks/instructions.py 'psycopg[native]:select1:1' --variants poolbridge,hand,raw

Needs valgrind; each measurement takes ~1 minute (Python runs ~50x slower under it).
The count is not exactly reproducible (how often the event loop polls depends on timing,
and the hash seed moves it by ~5k): ``--repeat R`` measures R times, each repetition with
its own ``PYTHONHASHSEED`` shared by the variants (a paired comparison), and prints the
median and min..max per variant and of the per-repetition ratios.

    python benchmarks/instructions.py 'psycopg[native]:select1:1' --repeat 3

Variant ``nofifo`` (raw engine stacks: asyncpg, aiopg, aiomysql, asyncmy): the
poolbridge variant with the engine turned into benchmarks/nofifo.py's measurement-only
barging engine (no FIFO hand-off; not shipped). ``--waits`` runs each variant once without
valgrind and prints the acquire waits (p50/p99/max, from the pool's own wait durations;
poolbridge and nofifo only).

    python benchmarks/instructions.py asyncmy:select1:100 --variants poolbridge,nofifo,hand
    python benchmarks/instructions.py asyncmy:select1:100 --variants poolbridge,nofifo --waits
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys

DONE = "instructions.py: completed"


def child(spec: str, variant: str, n: int, waits: list[float] | None = None) -> None:
    """Run exactly ``n`` operations of ``spec`` (STACK:QUERY:TASKS) on a fresh pool;
    ``waits``: collect the pool's acquire waits (seconds) into it."""
    from poolbridge.cli.bench import run as bench
    from poolbridge.cli.bench.drivers import setup, teardown

    name, query, tasks = spec.rsplit(":", 2)
    stack = next(s for s in bench.STACKS if s[0] == name)

    async def main() -> None:
        if query == "orm":
            await setup(stack[1])
        try:
            opened = "poolbridge" if variant == "nofifo" else variant
            async with bench.STACKS[stack](opened) as ops:
                pool = getattr(ops.acquire, "__self__", None)
                if variant == "nofifo":
                    from nofifo import make_nofifo  # benchmarks/, next to this script

                    make_nofifo(pool.engine)  # type: ignore[union-attr]
                if waits is not None:
                    pool.recorder.add_listener(  # type: ignore[union-attr]
                        lambda kind, s: waits.append(s) if kind == "wait_time" else None
                    )
                if query == "acquire":
                    for _ in range(n):
                        async with ops.acquire():
                            pass
                    return
                op = ops.select1 if query == "select1" else ops.orm
                left = n

                async def worker() -> None:
                    nonlocal left
                    while left > 0:
                        left -= 1
                        await op()

                await asyncio.gather(*(worker() for _ in range(int(tasks))))
        finally:
            if query == "orm":
                await teardown(stack[1])

    asyncio.run(main())
    print(DONE, file=sys.stderr)


def instructions(spec: str, variant: str, n: int, seed: int | None = None) -> int:
    """Instructions of one child run under callgrind (RuntimeError if it did not finish);
    ``seed``: the child's PYTHONHASHSEED (None: inherited)."""
    cmd = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        __file__,
        "--child",
        spec,
        variant,
        str(n),
    ]
    env = dict(os.environ)
    if seed is not None:
        env["PYTHONHASHSEED"] = str(seed)
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    m = re.search(r"Collected : (\d+)", r.stderr)
    if DONE not in r.stderr or m is None:
        raise RuntimeError(f"{spec} {variant} n={n} failed:\n{r.stderr[-1500:]}")
    return int(m.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "spec", nargs="?", help="STACK:QUERY:TASKS, e.g. 'sqlalchemy[asyncpg]:select1:100'"
    )
    parser.add_argument("--variants", default="poolbridge,hand", help="comma-separated")
    parser.add_argument("--n", nargs=2, type=int, default=(300, 1300), metavar=("N1", "N2"))
    parser.add_argument(
        "--repeat", type=int, default=1, help="repetitions, each with its own hash seed"
    )
    parser.add_argument(
        "--waits",
        action="store_true",
        help="no valgrind: print each variant's acquire waits (p50/p99/max) over N2 operations",
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    ns = parser.parse_args(argv)
    if ns.child:
        spec, variant, n = ns.child
        child(spec, variant, int(n))
        return 0
    if ns.spec is None:
        parser.error("the spec is required")
    if ns.waits:
        for variant in ns.variants.split(","):
            got: list[float] = []
            child(ns.spec, variant, ns.n[1], got)
            got.sort()
            if got:
                p50, p99 = got[len(got) // 2], got[min(len(got) - 1, len(got) * 99 // 100)]
                print(
                    f"{ns.spec} {variant}: {len(got)} acquires, wait p50 {p50 * 1e3:.2f} ms,"
                    f" p99 {p99 * 1e3:.2f} ms, max {got[-1] * 1e3:.2f} ms",
                    flush=True,
                )
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed", file=sys.stderr)
        return 2
    n1, n2 = ns.n
    variants = ns.variants.split(",")
    per: dict[str, list[float]] = {v: [] for v in variants}
    for rep in range(ns.repeat):
        seed = None if ns.repeat == 1 else rep + 1
        for variant in variants:
            a = instructions(ns.spec, variant, n1, seed)
            b = instructions(ns.spec, variant, n2, seed)
            per[variant].append((b - a) / (n2 - n1))
            print(
                f"{ns.spec} {variant}: {per[variant][-1] / 1000:.1f}k instructions per operation"
                + ("" if seed is None else f" (PYTHONHASHSEED={seed})"),
                flush=True,
            )
    if ns.repeat > 1:
        for variant, vals in per.items():
            print(
                f"{ns.spec} {variant}: median {statistics.median(vals) / 1000:.1f}k "
                f"({min(vals) / 1000:.1f}..{max(vals) / 1000:.1f}k over {len(vals)})"
            )
    for ours in ("poolbridge", "nofifo"):
        if "hand" not in per or ours not in per:
            continue
        ratios = [h / p for h, p in zip(per["hand"], per[ours], strict=True)]
        spread = ""
        if len(ratios) > 1:
            spread = f" (per repetition {min(ratios):.3f}..{max(ratios):.3f})"
        print(
            f"hand / {ours} = {statistics.median(ratios):.3f}{spread} "
            "(the CPU-bound throughput ratio)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
