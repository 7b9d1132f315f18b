"""Measurement machinery shared by ``poolbridge bench`` and the scripts in ``benchmarks/``.

Why shared: every benchmark compares pools on a machine that other processes load, so they
all need the same defences — interleaved rounds (every round runs every cell once, in a
shuffled order, so drift hits every pool alike), a fresh pool or a fresh process per
measurement (no variant keeps a luckier set of connections), and the median with its
min..max spread instead of a single sample. Standard library only.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

__all__ = [
    "acquire_release_us",
    "interleaved",
    "median_spread",
    "print_table",
    "rate",
    "run_child",
]

Cell = TypeVar("Cell", bound=Hashable)


async def rate(
    op: Callable[[], Awaitable[Any]], tasks: int, seconds: float, warmup: float = 0.1
) -> float:
    """Operations per second of ``tasks`` concurrent loops of ``op`` over ``seconds``.

    The loops run ``warmup`` seconds before counting starts (the pool grows to the
    concurrency it sees, caches fill), and stop together after the window.
    """
    count = 0
    stop = False

    async def worker() -> None:
        nonlocal count
        while not stop:
            await op()
            count += 1

    workers = [asyncio.create_task(worker()) for _ in range(tasks)]
    try:
        await asyncio.sleep(warmup)
        start_count, t0 = count, time.perf_counter()
        await asyncio.sleep(seconds)
        # on a starved machine a short window can end before any operation completed:
        # extend it until one did (bounded), so a rate is never a meaningless zero
        give_up = time.perf_counter() + 30.0
        while count == start_count and time.perf_counter() < give_up:
            await asyncio.sleep(0.005)
        done, elapsed = count - start_count, time.perf_counter() - t0
    finally:
        stop = True
        results = await asyncio.gather(*workers, return_exceptions=True)
    for res in results:
        if isinstance(res, BaseException):
            raise res
    return done / elapsed


async def acquire_release_us(
    acquire: Callable[[], AbstractAsyncContextManager[Any]], seconds: float, warmup: int = 200
) -> float:
    """Microseconds per acquire + release pair (no query), one task, batches of 100."""
    for _ in range(warmup):
        async with acquire():
            pass
    n = 0
    t0 = time.perf_counter()
    end = t0 + seconds
    while True:
        for _ in range(100):
            async with acquire():
                pass
        n += 100
        if time.perf_counter() >= end:
            break
    return (time.perf_counter() - t0) / n * 1e6


def interleaved(
    cells: Sequence[Cell],
    rounds: int,
    measure: Callable[[Cell], float | None],
    *,
    seed: int | None = None,
    label: str = "",
) -> dict[Cell, list[float]]:
    """Run every cell once per round, in a fresh shuffled order each round.

    ``measure`` returns a sample or None (a failed measurement: left out, said once).
    """
    rng = random.Random(seed)
    samples: dict[Cell, list[float]] = {cell: [] for cell in cells}
    for r in range(rounds):
        order = list(cells)
        rng.shuffle(order)
        t0 = time.perf_counter()
        for cell in order:
            value = measure(cell)
            if value is not None:
                samples[cell].append(value)
        print(
            f"{label}round {r + 1}/{rounds}: {len(order)} cells, {time.perf_counter() - t0:.0f} s",
            flush=True,
        )
    return samples


def median_spread(values: Iterable[float]) -> tuple[float, float, float]:
    """(median, min, max) of the samples; NaN for none."""
    xs = list(values)
    if not xs:
        nan = float("nan")
        return nan, nan, nan
    return statistics.median(xs), min(xs), max(xs)


def run_child(cmd: Sequence[str], timeout: float = 120.0) -> Any | None:
    """Run ``cmd`` (a fresh Python process) and parse the JSON on its last stdout line.

    Returns None, after printing the child's last error line, when it fails.
    """
    out = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        tail = out.stderr.strip().splitlines()[-1:] or ["(no output)"]
        print(f"  ! {' '.join(cmd[2:])} failed: {tail[0]}", file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def print_table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], *, markdown: bool = False
) -> None:
    """Print rows aligned under headers (text columns left, numbers right), or as a
    Markdown table (ready to paste into docs/performance.md)."""
    text = [[str(c) for c in row] for row in rows]
    if markdown:
        print("| " + " | ".join(headers) + " |")
        print("|" + "|".join("---" for _ in headers) + "|")
        for row in text:
            print("| " + " | ".join(row) + " |")
        return
    widths = [max([len(h)] + [len(r[i]) for r in text]) for i, h in enumerate(headers)]
    numeric = [all(_is_number(r[i]) for r in text) and bool(text) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if num else c.ljust(w)
            for c, w, num in zip(cells, widths, numeric, strict=True)
        )

    print(line(headers))
    for row in text:
        print(line(row))


def _is_number(cell: str) -> bool:
    try:
        float(cell.replace(",", "").rstrip("x"))
    except ValueError:
        return cell in ("n/a", "-")
    return True
