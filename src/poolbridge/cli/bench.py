"""``poolbridge bench``: run benchmarks/bench.py from a source checkout (see that file)."""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path

from poolbridge.cli import arg, subcommand

__all__ = ["bench"]

#: benchmarks/ lives next to src/ in a checkout; it is not part of the installed package
BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench.py"


@subcommand(
    "bench",
    help="throughput of poolbridge stacks vs the same stack by hand vs the raw driver pool",
    args=[
        arg("--quick", action="store_true", help="1 round, short windows"),
        arg("--rounds", type=int, default=3, help="interleaved rounds (median of them)"),
        arg("--json", metavar="FILE", help="write the records as JSON"),
        arg("--png", metavar="FILE", help="write a plot (needs poolbridge[bench])"),
        arg("--window", type=float, help="seconds per cell (default 0.4; --quick 0.12)"),
        arg("--stack", action="append", help="only this stack (repeatable)"),
        arg(
            "--backend",
            action="append",
            choices=("postgresql", "mysql"),
            help="only this backend (repeatable)",
        ),
        arg("--markdown", action="store_true", help="print the table as Markdown"),
    ],
)
def bench(ns: argparse.Namespace) -> int:
    """Run the benchmark script with the same options."""
    if not BENCH.is_file():
        print(f"poolbridge bench: {BENCH} not found (run it from a source checkout)",
              file=sys.stderr)  # fmt: skip
        return 2
    argv = ["--rounds", str(ns.rounds)]
    argv += ["--quick"] if ns.quick else []
    argv += ["--json", ns.json] if ns.json else []
    argv += ["--png", ns.png] if ns.png else []
    argv += ["--window", str(ns.window)] if ns.window else []
    argv += ["--markdown"] if ns.markdown else []
    for s in ns.stack or []:
        argv += ["--stack", s]
    for b in ns.backend or []:
        argv += ["--backend", b]
    module = runpy.run_path(str(BENCH), run_name="poolbridge_bench")
    code: int = module["main"](argv)
    return code
