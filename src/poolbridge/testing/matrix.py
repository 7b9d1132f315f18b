"""The conformance matrix: one table per backend, requirements as rows, adapter+driver as
columns; each cell is ``pass``, ``FAIL``, ``closed [n]`` or ``skip [n]`` with the reasons
listed under the table (a closed row is a declared limitation, a skip is a missing server
or an opt-in row not enabled)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from poolbridge.testing.harness import Target
from poolbridge.testing.requirements import REQUIREMENTS

__all__ = ["Cell", "Matrix"]

_BACKEND_ORDER = {"postgresql": 0, "mysql": 1, "sqlite": 2}
_RANK = {"FAIL": 3, "pass": 2, "closed": 1, "skip": 0}


@dataclass(frozen=True)
class Cell:
    """The outcome of one test item for one row and column."""

    outcome: str  # pass | FAIL | closed | skip
    reason: str = ""
    entry_point: str = "handle"

    @classmethod
    def from_report(cls, report: Any, entry_point: str) -> Cell:
        if report.failed:
            return cls("FAIL", f"{report.when} failed via {entry_point}", entry_point)
        if report.skipped:
            longrepr = report.longrepr
            text = str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr)
            text = text.removeprefix("Skipped: ")
            if text.startswith("closed: "):
                return cls("closed", text.removeprefix("closed: "), entry_point)
            return cls("skip", text, entry_point)
        return cls("pass", "", entry_point)


@dataclass
class Matrix:
    """Cells collected during the session, keyed by (backend, column, requirement)."""

    cells: dict[tuple[str, str, str], list[Cell]] = field(default_factory=dict)

    def add(self, target: Target, requirement: str, cell: Cell) -> None:
        self.add_cell(target.backend, target.column, requirement, cell)

    def add_cell(self, backend: str, column: str, requirement: str, cell: Cell) -> None:
        self.cells.setdefault((backend, column, requirement), []).append(cell)

    def verdict(self, backend: str, column: str, requirement: str) -> Cell | None:
        """The cell shown: any failure wins, then a pass, then closed, then skip."""
        cells = self.cells.get((backend, column, requirement))
        if not cells:
            return None
        best = max(cells, key=lambda c: _RANK[c.outcome])
        if best.outcome == "FAIL":
            failing = sorted({c.entry_point for c in cells if c.outcome == "FAIL"})
            return Cell("FAIL", "via " + ", ".join(failing), best.entry_point)
        return best

    def render(self, targets: Iterable[Target]) -> list[str]:
        """The text tables, one per backend."""
        columns: dict[str, list[str]] = {}
        via: dict[str, str] = {}
        for t in targets:
            cols = columns.setdefault(t.backend, [])
            if t.column not in cols:
                cols.append(t.column)
            if t.via:
                via[t.backend] = t.via
        lines: list[str] = []
        for backend in sorted(columns, key=lambda b: (_BACKEND_ORDER.get(b, 9), b)):
            cols = columns[backend]
            notes: dict[str, int] = {}
            rows: list[list[str]] = []
            for req in REQUIREMENTS:
                row = [req.name]
                for col in cols:
                    cell = self.verdict(backend, col, req.name)
                    if cell is None:
                        row.append("-")
                    elif cell.outcome in ("closed", "skip"):
                        key = f"{cell.outcome}: {cell.reason}"
                        n = notes.setdefault(key, len(notes) + 1)
                        row.append(f"{cell.outcome} [{n}]")
                    else:
                        row.append(cell.outcome)
                rows.append(row)
            header = ["requirement", *cols]
            widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

            def fmt(cells: list[str], widths: list[int] = widths) -> str:
                return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

            lines.append("")
            lines.append(f"{backend} via {via[backend]}:" if backend in via else f"{backend}:")
            lines.append(fmt(header))
            lines.append(fmt(["-" * w for w in widths]))
            lines.extend(fmt(r) for r in rows)
            for text, n in notes.items():
                lines.append(f"  [{n}] {text}")
        return lines
