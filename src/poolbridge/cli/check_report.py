"""What ``poolbridge check`` does with the results: the matrix, JSON, JUnit and the verdict.

The pytest subprocesses (one per column) each leave a JSON file of records written by
:mod:`poolbridge.cli.check_collect`; :class:`ColumnResult` reads one back, and the functions
here merge the columns into the suite's own :class:`~poolbridge.testing.matrix.Matrix` (one
table per backend, requirements as rows, adapter[driver] as columns, reasons as numbered
notes), a JSON document, one JUnit XML file, and the list of problems that decide the exit
code.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from poolbridge.config.redact import redact_text, redact_url
from poolbridge.testing.harness import Target
from poolbridge.testing.matrix import Cell, Matrix
from poolbridge.testing.requirements import REQUIREMENTS, Requirement, selected

__all__ = [
    "Column",
    "ColumnResult",
    "exit_problems",
    "render_tables",
    "summary_line",
    "write_json",
    "write_junit",
]

#: skip reasons that do not make a run fail: opt-in rows the user did not ask for
_OPT_IN_PREFIXES = ("fault row",)
_NOT_INSTALLED = "not installed"


@dataclass(eq=False)
class Column:
    """One matrix column: an adapter with one driver against one server URL."""

    adapter: str
    driver: str
    backend: str
    url: str = field(repr=False)
    #: AdapterNotAvailable message when the extra (or the driver) is not installed
    missing: str | None = None
    #: "pgbouncer": the URL is a pgbouncer in transaction pooling in front of the server
    via: str = ""

    @property
    def name(self) -> str:
        return f"{self.adapter}[{self.driver}]"

    @property
    def target(self) -> Target:
        return Target(self.adapter, self.url, self.backend, self.driver, self.via)

    @property
    def install_hint(self) -> str:
        """``pip install 'poolbridge[x]'`` taken from the AdapterNotAvailable message."""
        text = self.missing or ""
        at = text.find("pip install")
        return text[at:] if at >= 0 else text


@dataclass
class ColumnResult:
    """The outcome of one column's pytest run."""

    column: Column
    records: list[dict[str, Any]] = field(default_factory=list)
    returncode: int = 0
    output: str = ""
    seconds: float = 0.0
    junit: Path | None = None
    #: why the run produced no usable results (crash, usage error), else None
    broken: str | None = None

    @classmethod
    def not_installed(cls, column: Column) -> ColumnResult:
        return cls(column)

    @classmethod
    def load(
        cls,
        column: Column,
        *,
        returncode: int,
        output: str,
        results: Path,
        junit: Path,
        seconds: float,
    ) -> ColumnResult:
        out = cls(column, returncode=returncode, output=output, seconds=seconds)
        out.junit = junit if junit.exists() else None
        if results.exists():
            data = json.loads(results.read_text(encoding="utf-8"))
            out.records = list(data.get("records", []))
        # pytest: 0 all passed, 1 some failed, 5 nothing collected; else a crash/usage error
        if returncode not in (0, 1) or not out.records:
            tail = "\n".join(output.strip().splitlines()[-15:])
            out.broken = f"pytest exited with {returncode}: {redact_text(tail)}"
        return out

    # -- cells ----------------------------------------------------------------------------
    def cells(self) -> dict[str, list[Cell]]:
        """requirement -> the cells of every test item of this column."""
        out: dict[str, list[Cell]] = {}
        if self.column.missing is not None:
            cell = Cell("skip", f"{_NOT_INSTALLED}: {self.column.install_hint}")
            return {r.name: [cell] for r in REQUIREMENTS}
        if self.broken is not None:
            return {r.name: [Cell("FAIL", self.broken)] for r in REQUIREMENTS}
        for rec in self.records:
            out.setdefault(rec["requirement"], []).append(_cell(rec))
        return out

    def counts(self) -> dict[str, int]:
        """Verdicts per outcome over the requirements of this column."""
        counts = {"pass": 0, "FAIL": 0, "closed": 0, "skip": 0}
        for cells in self.cells().values():
            counts[_verdict(cells).outcome] += 1
        return counts

    def failures(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["outcome"] == "failed"]


def _cell(rec: dict[str, Any]) -> Cell:
    point = str(rec.get("entry_point", "handle"))
    if rec["outcome"] == "failed":
        return Cell("FAIL", f"{rec['when']} failed via {point}", point)
    if rec["outcome"] == "skipped":
        text = str(rec.get("detail", ""))
        if text.startswith("closed: "):
            return Cell("closed", text.removeprefix("closed: "), point)
        return Cell("skip", text, point)
    return Cell("pass", "", point)


def _verdict(cells: list[Cell]) -> Cell:
    matrix = Matrix()
    key = Target("-", "-", "-", "-")
    for c in cells:
        matrix.add(key, "r", c)
    verdict = matrix.verdict("-", key.column, "r")
    assert verdict is not None
    return verdict


def _matrix(results: list[ColumnResult]) -> Matrix:
    matrix = Matrix()
    for res in results:
        for req, cells in res.cells().items():
            for c in cells:
                matrix.add(res.column.target, req, c)
    return matrix


def summary_line(res: ColumnResult) -> str:
    """One progress line for a finished column."""
    c = res.column
    head = f"{c.name:<28} {c.backend:<10}"
    if c.missing is not None:
        return f"{head} skip (not installed: {c.install_hint})"
    if res.broken is not None:
        return f"{head} ERROR {res.broken.splitlines()[0]} ({res.seconds:.1f} s)"
    n = res.counts()
    return (
        f"{head} {n['pass']:>2} pass  {n['FAIL']:>2} fail  {n['closed']:>2} closed  "
        f"{n['skip']:>2} skip  ({res.seconds:.1f} s)"
    )


def render_tables(results: list[ColumnResult], *, faults: bool) -> list[str]:
    """The matrix (one table per backend) followed by the details of every failure."""
    lines = ["", "poolbridge conformance matrix (pass / FAIL / closed [note] / skip [note])"]
    lines += _matrix(results).render([r.column.target for r in results])
    failing = [(r, f) for r in results for f in r.failures()]
    broken = [r for r in results if r.broken is not None]
    if failing or broken:
        lines += ["", "failures:"]
        for r in broken:
            lines.append(f"  {r.column.name} on {r.column.backend}: {r.broken}")
        for r, f in failing:
            detail = f["detail"].strip().splitlines()
            first = detail[0] if detail else ""
            lines.append(
                f"  {r.column.name} on {r.column.backend}: {f['requirement']} via "
                f"{f['entry_point']} ({f['when']}): {redact_text(first)[:300]}"
            )
    if not faults:
        lines += ["", "fault rows (refill, pre_ping) were not run: add --faults to run them"]
    return lines


def exit_problems(
    results: list[ColumnResult], *, explicit_adapters: bool, rows: tuple[str, ...] = ()
) -> list[str]:
    """Why the run is not a success (empty: every open requirement passed); ``rows``: only
    the requirements matching one of these globs were run."""
    wanted = [r for r in REQUIREMENTS if selected(r.name, rows)]
    problems: list[str] = []
    for res in results:
        c = res.column
        where = f"{c.name} on {c.backend}"
        if c.missing is not None:
            if explicit_adapters:
                problems.append(f"{where}: not installed ({c.install_hint})")
            continue
        if res.broken is not None:
            problems.append(f"{where}: {res.broken.splitlines()[0]}")
            continue
        cells = res.cells()
        for req in wanted:
            if req.name not in cells:
                problems.append(f"{where}: {req.name}: no result")
                continue
            v = _verdict(cells[req.name])
            if v.outcome == "FAIL":
                problems.append(f"{where}: {req.name} failed ({v.reason})")
            elif v.outcome == "skip" and not v.reason.startswith(_OPT_IN_PREFIXES):
                problems.append(f"{where}: {req.name} not run ({v.reason})")
    return problems


def _item(cell: Cell) -> dict[str, str]:
    return {"entry_point": cell.entry_point, "outcome": cell.outcome.lower(), "reason": cell.reason}


def _requirement(r: Requirement) -> dict[str, Any]:
    return {"name": r.name, "description": r.description, "knobs": list(r.knobs), "fault": r.fault}


def _json_doc(
    results: list[ColumnResult], *, faults: bool, seconds: float, rows: tuple[str, ...] = ()
) -> dict[str, Any]:
    columns: list[dict[str, Any]] = []
    cells: list[dict[str, Any]] = []
    for res in results:
        c = res.column
        status = "not_installed" if c.missing else ("error" if res.broken else "ran")
        columns.append(
            {
                "column": c.name,
                "adapter": c.adapter,
                "driver": c.driver,
                "backend": c.backend,
                "url": redact_url(c.url),
                "status": status,
                "detail": res.broken or (c.install_hint if c.missing else None),
                "seconds": round(res.seconds, 2),
            }
        )
        for req, req_cells in res.cells().items():
            v = _verdict(req_cells)
            cells.append(
                {
                    "backend": c.backend,
                    "column": c.name,
                    "adapter": c.adapter,
                    "driver": c.driver,
                    "requirement": req,
                    "outcome": v.outcome.lower(),
                    "reason": v.reason,
                    "items": [_item(x) for x in req_cells],
                }
            )
    problems = exit_problems(results, explicit_adapters=False, rows=rows)
    return {
        "ok": not problems,
        "faults": faults,
        "seconds": round(seconds, 2),
        "requirements": [_requirement(r) for r in REQUIREMENTS],
        "columns": columns,
        "cells": cells,
        "problems": problems,
    }


def write_json(
    path: Path,
    results: list[ColumnResult],
    *,
    faults: bool,
    seconds: float,
    rows: tuple[str, ...] = (),
) -> None:
    """Machine-readable results: columns, one cell per requirement x column, problems."""
    doc = _json_doc(results, faults=faults, seconds=seconds, rows=rows)
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def write_junit(path: Path, results: list[ColumnResult]) -> None:
    """One JUnit XML file: pytest's own ``<testsuite>`` of every column, merged, plus a
    suite of skipped cases for adapters that are not installed."""
    root = ET.Element("testsuites", name="poolbridge check")
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    for res in results:
        suites: list[ET.Element] = []
        if res.junit is not None:
            parsed = ET.parse(res.junit).getroot()
            suites = [parsed] if parsed.tag == "testsuite" else list(parsed.iter("testsuite"))
        elif res.column.missing is not None or res.broken is not None:
            suites = [_synthetic_suite(res)]
        for suite in suites:
            suite.set("name", f"poolbridge.{res.column.name}.{res.column.backend}")
            for key in totals:
                totals[key] += int(suite.get(key, "0"))
            root.append(suite)
    for key, value in totals.items():
        root.set(key, str(value))
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def _synthetic_suite(res: ColumnResult) -> ET.Element:
    c = res.column
    suite = ET.Element("testsuite", name=c.name)
    n = 0
    for req in REQUIREMENTS:
        case = ET.SubElement(
            suite, "testcase", classname=f"poolbridge.{c.backend}.{c.name}", name=req.name
        )
        n += 1
        if c.missing is not None:
            ET.SubElement(case, "skipped", message=f"{_NOT_INSTALLED}: {c.install_hint}")
        else:
            ET.SubElement(case, "error", message=(res.broken or "")[:500])
    kind = "skipped" if c.missing is not None else "errors"
    suite.set("tests", str(n))
    suite.set(kind, str(n))
    return suite
