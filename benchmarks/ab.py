"""Fresh-process A/B of one bench cell: poolbridge vs hand (or any two variants), alternated.

The interleaved bench (``poolbridge bench``) runs every variant in one process; this script
is its independent check: each measurement is ONE child process that opens a fresh pool of
the stack, warms up, and counts operations over a window of at least 3 s. The variants
alternate (A, B, A, B, ...) so that drift on a shared machine hits both alike; reported are
the median, min..max of each variant and the median of the per-pair ratios.

    python benchmarks/ab.py asyncmy:select1:1
    python benchmarks/ab.py asyncpg:select1:100 --pairs 7 --window 5
    python benchmarks/ab.py asyncmy:acquire:1 --loop uvloop
    python benchmarks/ab.py 'tortoise[mysql]:orm:10' --variants poolbridge,raw
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys


def child(spec: str, variant: str, window: float, loop: str) -> None:
    """One measurement: ops/s of ``spec`` (STACK:QUERY:TASKS) for ``variant``, as JSON."""
    from poolbridge.cli.bench import run as bench
    from poolbridge.cli.bench.drivers import setup, teardown
    from poolbridge.cli.bench.floor import loop_factory
    from poolbridge.cli.bench.measure import acquire_release_us, rate

    name, query, tasks = spec.rsplit(":", 2)
    stack = next(s for s in bench.STACKS if s[0] == name)

    async def main() -> float:
        if query == "orm":
            await setup(stack[1])
        try:
            async with bench.STACKS[stack](variant) as ops:
                await ops.select1()
                if query == "acquire":
                    return 1e6 / await acquire_release_us(ops.acquire, window)
                op = ops.select1 if query == "select1" else ops.orm
                return await rate(op, int(tasks), window, warmup=0.5)
        finally:
            if query == "orm":
                await teardown(stack[1])

    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        print(json.dumps({"ops": runner.run(main())}))


def measure(spec: str, variant: str, window: float, loop: str) -> float:
    cmd = [sys.executable, __file__, "--child", spec, variant, str(window), loop]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=window * 10 + 60)
    if r.returncode != 0:
        raise RuntimeError(f"{spec} {variant} failed:\n{r.stderr[-1500:]}")
    return float(json.loads(r.stdout.strip().splitlines()[-1])["ops"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("spec", nargs="?", help="STACK:QUERY:TASKS, e.g. asyncmy:select1:1")
    parser.add_argument("--variants", default="poolbridge,hand", help="A,B")
    parser.add_argument("--pairs", type=int, default=5, help="A/B pairs (one process each)")
    parser.add_argument("--window", type=float, default=3.0, help="seconds (>= 3)")
    parser.add_argument("--loop", default="asyncio", choices=("asyncio", "uvloop"))
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    ns = parser.parse_args(argv)
    if ns.child:
        spec, variant, window, loop = ns.child
        child(spec, variant, float(window), loop)
        return 0
    if ns.spec is None:
        parser.error("the spec is required")
    if ns.window < 3.0:
        parser.error("--window must be at least 3 s (shorter windows swing too much here)")
    if ns.pairs < 5:
        parser.error("--pairs must be at least 5 (the median of fewer is not a measurement)")
    a, b = ns.variants.split(",")
    got: dict[str, list[float]] = {a: [], b: []}
    for i in range(ns.pairs):
        order = (a, b) if i % 2 == 0 else (b, a)  # alternate which variant goes first
        for v in order:
            got[v].append(measure(ns.spec, v, ns.window, ns.loop))
        print(f"pair {i + 1}/{ns.pairs}: {a} {got[a][-1]:.0f}  {b} {got[b][-1]:.0f}", flush=True)
    unit = "pairs/s" if ":acquire:" in ns.spec else "ops/s"
    for v in (a, b):
        vals = got[v]
        print(f"{v}: {statistics.median(vals):.0f} {unit} ({min(vals):.0f}..{max(vals):.0f})")
    ratios = [x / y for x, y in zip(got[a], got[b], strict=True)]
    print(
        f"{a} / {b} = {statistics.median(ratios):.3f} "
        f"(per pair {min(ratios):.3f}..{max(ratios):.3f}, {ns.loop} loop)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
