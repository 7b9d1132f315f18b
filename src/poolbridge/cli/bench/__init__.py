"""``poolbridge bench``: throughput of each stack configured by poolbridge, by hand and with
its pool's defaults, against the user's own servers.

The benchmark ships in the package (:mod:`poolbridge.cli.bench.run` and the stacks in
``drivers`` and ``orm``), so an installed poolbridge measures the user's servers with
``poolbridge bench --postgresql URL --mysql URL``. The scripts under ``benchmarks/`` in a
source checkout (valgrind instruction counts, round trips through a proxy) build on the same
stacks. This module only declares the subcommand: the drivers and ORMs are imported when it
runs.
"""

from __future__ import annotations

import argparse

from poolbridge.cli import Arg, arg, subcommand

__all__ = ["ARGS", "bench"]

#: the options of ``poolbridge bench`` (also parsed by ``python -m poolbridge.cli.bench.run``)
ARGS: list[Arg] = [
    arg("--postgresql", metavar="URL", help="PostgreSQL server to measure (postgresql://...)"),
    arg("--mysql", metavar="URL", help="MySQL/MariaDB server to measure (mysql://...)"),
    arg("--quick", action="store_true", help="1 round, short windows"),
    arg("--rounds", type=int, default=3, help="interleaved rounds (median of them; >= 3)"),
    arg("--window", type=float, help="seconds per cell (default 0.4; --quick 0.12)"),
    arg("--json", metavar="FILE", help="write the records as JSON"),
    arg("--png", metavar="FILE", help="write a plot (needs poolbridge[bench])"),
    arg("--stack", action="append", help="only this stack (repeatable)"),
    arg(
        "--backend",
        action="append",
        choices=("postgresql", "mysql"),
        help="only this backend (repeatable; default: those given a URL, else both)",
    ),
    arg(
        "--loop",
        metavar="LOOPS",
        help="event loops, comma-separated: asyncio,uvloop (default: both when uvloop is "
        "installed; --quick: asyncio)",
    ),
    arg(
        "--no-floor",
        action="store_true",
        help="leave out the acquire-floor and scale tables (engine vs Queue vs native pools; "
        "they come only with a run of every stack, no --stack)",
    ),
    arg("--markdown", action="store_true", help="print the table as Markdown"),
    arg(
        "--profile",
        metavar="STACK:VARIANT:QUERY:TASKS",
        help="cProfile one cell (e.g. psycopg:poolbridge:select1:10) and print the top",
    ),
]


@subcommand(
    "bench",
    help="throughput of poolbridge stacks vs the same stack by hand vs the raw driver pool",
    args=ARGS,
)
def bench(ns: argparse.Namespace) -> int:
    """Run the benchmark (see :mod:`poolbridge.cli.bench.run`)."""
    from poolbridge.cli.bench.run import run

    return run(ns)
