"""``poolbridge bench``: poolbridge-configured stacks vs the same stack configured by hand vs
the raw driver pool, against the servers the user names.

Stacks (PostgreSQL and MariaDB where they apply): SQLAlchemy asyncio on asyncpg, psycopg,
aiomysql and asyncmy; psycopg (psycopg_pool, used through the uniform ``pool.acquire()``
and, as ``psycopg[native]``, through psycopg_pool's own ``connection()``); asyncpg, aiopg,
aiomysql and asyncmy (on poolbridge's engine); Tortoise ORM (asyncpg, MySQL) and
peewee-async (aiopg, aiomysql) on the engine. Each runs in three variants side by side:
**poolbridge** (the adapter), **hand** (the same stack configured with its own API and
the values PoolConfig means, written out by hand) and **raw** (the driver or ORM pool with
its defaults). A stack whose driver or ORM is not installed is left out, said once.

Cells, all on pools of max_size 10: ``select1`` (acquire -> SELECT 1 -> release) and
``orm`` (acquire -> one row by primary key through the ORM's query API, or a parametrised
SELECT for a raw driver -> release) at 1, 10 and 100 concurrent tasks, and ``acquire``
(acquire + release with no query, one task; reported as pairs/s and µs per pair).

Rounds are interleaved: each round visits the stacks in a shuffled order, opens a FRESH
pool per variant (variants in a shuffled order, next to each other in time) and runs that
pool's cells in a shuffled order. Reported: the median over rounds, poolbridge's min..max
spread and the min..max of the per-round ratios. ``ratio_vs_hand`` = poolbridge / hand,
``ratio_vs_raw`` = poolbridge / raw (higher is better for poolbridge, also for acquire).

    poolbridge bench [--postgresql URL] [--mysql URL] [--quick] [--json bench.json]
        [--png bench.png] [--stack NAME ...] [--backend postgresql|mysql] [--rounds N]
        [--window S] [--profile STACK:VARIANT:QUERY:TASKS]

It creates one small table (``pb_bench_<random>``) in each database it measures and drops
it at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib.util
import json
import random
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from poolbridge.cli.bench.drivers import (
    TABLE,
    Opener,
    open_asyncpg,
    open_dbapi,
    open_psycopg,
    set_urls,
    setup,
    teardown,
)
from poolbridge.cli.bench.floor import floor_tables, loop_factory
from poolbridge.cli.bench.measure import acquire_release_us, median_spread, print_table, rate
from poolbridge.cli.bench.orm import open_peewee, open_sqlalchemy, open_tortoise
from poolbridge.engine.build import build_name

P = functools.partial
STACKS: dict[tuple[str, str], Opener] = {
    ("sqlalchemy[asyncpg]", "postgresql"): P(open_sqlalchemy, "asyncpg"),
    ("sqlalchemy[psycopg]", "postgresql"): P(open_sqlalchemy, "psycopg"),
    ("sqlalchemy[aiomysql]", "mysql"): P(open_sqlalchemy, "aiomysql"),
    ("sqlalchemy[asyncmy]", "mysql"): P(open_sqlalchemy, "asyncmy"),
    ("psycopg", "postgresql"): open_psycopg,
    ("psycopg[native]", "postgresql"): P(open_psycopg, native=True),
    ("asyncpg", "postgresql"): open_asyncpg,
    ("aiopg", "postgresql"): P(open_dbapi, "aiopg"),
    ("aiomysql", "mysql"): P(open_dbapi, "aiomysql"),
    ("asyncmy", "mysql"): P(open_dbapi, "asyncmy"),
    ("tortoise[asyncpg]", "postgresql"): P(open_tortoise, "postgresql"),
    ("tortoise[mysql]", "mysql"): P(open_tortoise, "mysql"),
    ("peewee_async[aiopg]", "postgresql"): P(open_peewee, "postgresql"),
    ("peewee_async[aiomysql]", "mysql"): P(open_peewee, "mysql"),
}
VARIANTS = ("poolbridge", "hand", "raw")
CONCURRENCY = (1, 10, 100)
CELLS = [(q, c) for q in ("select1", "orm") for c in CONCURRENCY] + [("acquire", 1)]
#: what a target is judged on: interleaved rounds, seconds per window (fewer or shorter
#: runs swing by more than the few percent the targets are about on a shared machine)
FIRM_ROUNDS = 5
FIRM_WINDOW = 3.0
Key = tuple[tuple[str, str], str, str, int]  # (stack, variant, query, concurrency)


async def run_pool(
    stack: tuple[str, str], variant: str, rng: random.Random, window: float, warmup: float
) -> dict[tuple[str, int], float]:
    """Open one fresh pool of ``stack`` and run its cells in a shuffled order."""
    got: dict[tuple[str, int], float] = {}
    cells = CELLS[:]
    rng.shuffle(cells)
    async with STACKS[stack](variant) as ops:
        await ops.orm()  # the first query also fails fast on a broken stack
        for query, tasks in cells:
            if query == "acquire":
                got[(query, tasks)] = 1e6 / await acquire_release_us(ops.acquire, window)
            else:
                op = ops.select1 if query == "select1" else ops.orm
                got[(query, tasks)] = await rate(op, tasks, window, warmup)
    return got


async def bench(
    stacks: list[tuple[str, str]],
    rounds: int,
    window: float,
    warmup: float,
    seed: int | None = None,
) -> list[dict[str, Any]]:
    samples: dict[Key, list[float]] = {}
    failed: set[tuple[str, str]] = set()
    rng = random.Random(seed)
    backends = sorted({b for _, b in stacks})
    print(f"table {TABLE} on {', '.join(backends)} (dropped at the end)", flush=True)
    for backend in backends:
        await setup(backend)
    try:
        for r in range(rounds):
            t0 = time.perf_counter()
            order = stacks[:]
            rng.shuffle(order)
            for stack in order:
                if stack in failed:
                    continue
                variants = list(VARIANTS)
                rng.shuffle(variants)
                for variant in variants:
                    try:
                        got = await run_pool(stack, variant, rng, window, warmup)
                    except Exception:
                        print(
                            f"  ! {stack[0]} ({stack[1]}) {variant} failed:\n"
                            + traceback.format_exc(limit=3),
                            file=sys.stderr,
                        )
                        failed.add(stack)
                        break
                    for (query, tasks), value in got.items():
                        samples.setdefault((stack, variant, query, tasks), []).append(value)
            print(f"round {r + 1}/{rounds} done in {time.perf_counter() - t0:.0f} s", flush=True)
    finally:
        for backend in backends:
            await teardown(backend)
    return records(samples, [s for s in stacks if s not in failed], rounds)


def records(
    samples: dict[Key, list[float]], stacks: list[tuple[str, str]], rounds: int
) -> list[dict[str, Any]]:
    """One record per (stack, backend, query, concurrency): medians, spreads, ratios."""
    out = []
    for stack in stacks:
        for query, tasks in CELLS:
            per = {v: samples.get((stack, v, query, tasks), []) for v in VARIANTS}
            if not all(per.values()):
                continue
            med = {v: median_spread(per[v])[0] for v in VARIANTS}
            rec: dict[str, Any] = {
                "stack": stack[0],
                "backend": stack[1],
                "query": query,
                "concurrency": tasks,
                "qps": round(med["poolbridge"], 1),
                "qps_hand": round(med["hand"], 1),
                "qps_raw": round(med["raw"], 1),
                "ratio_vs_hand": round(med["poolbridge"] / med["hand"], 3),
                "ratio_vs_raw": round(med["poolbridge"] / med["raw"], 3),
                "spread": [round(min(per["poolbridge"]), 1), round(max(per["poolbridge"]), 1)],
                "rounds": len(per["poolbridge"]),
            }
            for other in ("hand", "raw"):  # per-round ratios: the same round's pools
                ratios = [a / b for a, b in zip(per["poolbridge"], per[other], strict=False)]
                rec[f"ratio_vs_{other}_spread"] = [round(min(ratios), 3), round(max(ratios), 3)]
            if query == "acquire":
                rec["us_per_pair"] = {v: round(1e6 / med[v], 2) for v in VARIANTS}
            out.append(rec)
    return out


def print_records(recs: list[dict[str, Any]], markdown: bool = False) -> None:
    def row(r: dict[str, Any]) -> list[str]:
        if r["query"] == "acquire":
            us = r["us_per_pair"]
            vals = [f"{us['poolbridge']:.2f}us", f"{us['hand']:.2f}us", f"{us['raw']:.2f}us"]
        else:
            vals = [f"{r['qps']:.0f}", f"{r['qps_hand']:.0f}", f"{r['qps_raw']:.0f}"]
        lo, hi = r["ratio_vs_hand_spread"]
        return [
            r["stack"],
            r["backend"],
            r["query"],
            str(r["concurrency"]),
            *vals,
            f"{r['ratio_vs_hand']:.2f}",
            f"{r['ratio_vs_raw']:.2f}",
            f"{r['spread'][0]:.0f}..{r['spread'][1]:.0f}",
            f"{lo:.2f}..{hi:.2f}",
        ]

    headers = [
        "stack",
        "backend",
        "query",
        "tasks",
        "poolbridge",
        "hand",
        "raw",
        "vs hand",
        "vs raw",
        "pb spread",
        "vs hand spread",
    ]
    print_table(headers, [row(r) for r in recs], markdown=markdown)


def targets(recs: list[dict[str, Any]]) -> list[tuple[str, str, bool]]:
    """(what, measured, met) for every target of docs/performance.md the records cover:
    SQLAlchemy and psycopg configured by poolbridge keep >= 0.97 of the same stack by hand,
    the engine doubles asyncpg's default Pool under load, the ORMs on the engine keep up
    with their native pools."""
    out = []
    for r in recs:
        name, q, c = r["stack"], r["query"], r["concurrency"]
        where = f"{name} ({r['backend']}) {q}@{c}"
        if q == "acquire":
            continue
        if name.startswith(("sqlalchemy", "psycopg")):
            need = 0.97
            out.append(
                (
                    f"{where} vs hand >= {need}",
                    f"{r['ratio_vs_hand']:.2f}",
                    r["ratio_vs_hand"] >= need,
                )
            )
        elif name == "asyncpg" and c in (10, 100):
            out.append(
                (
                    f"{where} vs asyncpg default Pool >= 2.0",
                    f"{r['ratio_vs_raw']:.2f}",
                    r["ratio_vs_raw"] >= 2.0,
                )
            )
        elif name.startswith(("tortoise", "peewee_async")):
            out.append(
                (
                    f"{where} vs native pool (hand) >= 1.0",
                    f"{r['ratio_vs_hand']:.2f}",
                    r["ratio_vs_hand"] >= 1.0,
                )
            )
    return out


def plot(recs: list[dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stacks = sorted({(r["stack"], r["backend"]) for r in recs})
    cols = min(4, len(stacks))
    rows = -(-len(stacks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat[len(stacks) :]:
        ax.set_visible(False)
    for ax, (name, backend) in zip(axes.flat, stacks, strict=False):
        for query, style in (("select1", "-"), ("orm", "--")):
            rs = [
                r for r in recs if (r["stack"], r["backend"], r["query"]) == (name, backend, query)
            ]
            xs = [str(r["concurrency"]) for r in rs]
            for key, label, color in (
                ("qps", "poolbridge", "C0"),
                ("qps_hand", "hand", "C1"),
                ("qps_raw", "raw", "C2"),
            ):
                ax.plot(
                    xs,
                    [r[key] for r in rs],
                    style,
                    marker="o",
                    color=color,
                    label=f"{label} {query}",
                )
        ax.set_title(f"{name} ({backend})", fontsize=9)
        ax.set_xlabel("concurrent tasks")
        ax.set_ylabel("queries / s")
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path)


def profile(spec: str, window: float) -> int:
    """cProfile one cell on a fresh pool: where the time of a missed target goes."""
    import cProfile
    import pstats

    name, variant, query, tasks = spec.rsplit(":", 3)
    stack = next((s for s in STACKS if s[0] == name), None)
    if stack is None or variant not in VARIANTS or (query, int(tasks)) not in CELLS:
        print(f"unknown cell {spec!r}", file=sys.stderr)
        return 2

    async def one() -> float:
        await setup(stack[1])
        try:
            async with STACKS[stack](variant) as ops:
                op = ops.select1 if query == "select1" else ops.orm
                prof.enable()
                try:
                    if query == "acquire":
                        return 1e6 / await acquire_release_us(ops.acquire, window)
                    return await rate(op, int(tasks), window, 0.2)
                finally:
                    prof.disable()
        finally:
            await teardown(stack[1])

    prof = cProfile.Profile()
    value = asyncio.run(one())
    print(f"{spec}: {value:.0f} per second under the profiler")
    pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    return 0


#: the modules each stack needs (its ORM and driver)
NEEDS: dict[str, tuple[str, ...]] = {
    "sqlalchemy[asyncpg]": ("sqlalchemy", "asyncpg"),
    "sqlalchemy[psycopg]": ("sqlalchemy", "psycopg_pool"),
    "sqlalchemy[aiomysql]": ("sqlalchemy", "aiomysql"),
    "sqlalchemy[asyncmy]": ("sqlalchemy", "asyncmy"),
    "psycopg": ("psycopg_pool",),
    "psycopg[native]": ("psycopg_pool",),
    "asyncpg": ("asyncpg",),
    "aiopg": ("aiopg",),
    "aiomysql": ("aiomysql",),
    "asyncmy": ("asyncmy",),
    "tortoise[asyncpg]": ("tortoise", "asyncpg"),
    "tortoise[mysql]": ("tortoise", "asyncmy"),
    "peewee_async[aiopg]": ("peewee_async", "aiopg"),
    "peewee_async[aiomysql]": ("peewee_async", "aiomysql"),
}


def _loops(spec: str | None, quick: bool = False) -> list[str]:
    """The event loops to run on: ``--loop`` (comma-separated), else asyncio's default and
    uvloop when it is installed (``--quick``: asyncio's only)."""
    if spec:
        return [s.strip() for s in spec.split(",") if s.strip()]
    if quick or importlib.util.find_spec("uvloop") is None:
        return ["asyncio"]
    return ["asyncio", "uvloop"]


def _run_on(loop: str, coro: Any) -> Any:
    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        return runner.run(coro)


def missing_modules(stack: str) -> list[str]:
    return [m for m in NEEDS[stack] if importlib.util.find_spec(m) is None]


def run(ns: argparse.Namespace) -> int:
    """Run the benchmark with the options of ``poolbridge bench`` (see the module doc)."""
    urls = {b: u for b, u in (("postgresql", ns.postgresql), ("mysql", ns.mysql)) if u}
    set_urls(urls)
    if ns.profile:
        return profile(ns.profile, ns.window or 2.0)
    if ns.quick:
        rounds, window, warmup = 1, ns.window or 0.12, 0.04
    else:
        rounds, window, warmup = max(3, ns.rounds), ns.window or 0.4, 0.1
    names = {n for n, _ in STACKS}
    unknown = set(ns.stack or ()) - names
    if unknown:
        print(
            f"poolbridge bench: unknown stack(s) {sorted(unknown)}; known: {sorted(names)}",
            file=sys.stderr,
        )
        return 2
    backends = ns.backend or list(urls) or ["postgresql", "mysql"]
    stacks = [s for s in STACKS if (not ns.stack or s[0] in ns.stack) and s[1] in backends]
    absent = {s[0]: missing_modules(s[0]) for s in stacks if missing_modules(s[0])}
    if absent and ns.stack:
        for name, modules in absent.items():
            print(f"poolbridge bench: {name} needs {', '.join(modules)}", file=sys.stderr)
        return 2
    for name, modules in absent.items():
        print(f"left out {name}: {', '.join(modules)} not installed", flush=True)
    stacks = [s for s in stacks if s[0] not in absent]
    if not stacks:
        print("poolbridge bench: no stack to measure", file=sys.stderr)
        return 2
    loops = _loops(ns.loop, ns.quick)
    engine_build = build_name()
    print(f"pool engine: {engine_build}", flush=True)
    recs: list[dict[str, Any]] = []
    for loop in loops:
        t0 = time.perf_counter()
        got = _run_on(loop, bench(stacks, rounds, window, warmup))
        print(
            f"\n{loop}: {rounds} round(s), {window:g} s windows, {time.perf_counter() - t0:.0f} s\n"
        )
        print_records(got, markdown=ns.markdown)
        recs.extend(dict(r, loop=loop, engine_build=engine_build) for r in got)
    if (
        not ns.no_floor
        and not ns.stack  # the floor and scale tables come with the full run
        and {"postgresql", "mysql"} <= set(backends)
        and not missing_modules("asyncpg")
        and not missing_modules("asyncmy")
    ):
        scale_window = 1.0 if ns.quick else 3.0
        recs.extend(floor_tables(loops, rounds, window, scale_window, markdown=ns.markdown))
    stack_recs = [r for r in recs if "stack" in r]
    checks = targets(stack_recs)
    if checks:
        # a target is judged on >= 5 interleaved rounds of >= 3 s windows (docs/performance.md)
        firm = rounds >= FIRM_ROUNDS and window >= FIRM_WINDOW
        if firm:
            print(f"\ntargets ({rounds} interleaved rounds of {window:g} s windows; medians):")
        else:
            print(
                f"\ntargets, indicative only ({rounds} round(s) of {window:g} s windows; judged "
                f"on >= {FIRM_ROUNDS} rounds of >= {FIRM_WINDOW:g} s: "
                f"--rounds {FIRM_ROUNDS} --window {FIRM_WINDOW:g}):"
            )
        for what, got, met in checks:
            verdict = ("met   " if met else "MISSED") if firm else ("above " if met else "below ")
            print(f"  {verdict} {what}: {got}")
    if ns.json:
        Path(ns.json).write_text(json.dumps(recs, indent=2), encoding="utf-8")
    if ns.png:
        plot(stack_recs, ns.png)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m poolbridge.cli.bench.run``: the same options as ``poolbridge bench``."""
    from poolbridge.cli.bench import ARGS

    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    for flags, kwargs in ARGS:
        parser.add_argument(*flags, **kwargs)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
