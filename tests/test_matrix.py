"""The conformance matrix rendering (pure: no server, no pytest run)."""

from __future__ import annotations

from types import SimpleNamespace

from poolbridge.testing.harness import Target
from poolbridge.testing.matrix import Cell, Matrix

PG = Target("psycopg", "postgresql://x@h/db", "postgresql", "psycopg")
SA = Target("sqlalchemy", "postgresql://x@h/db", "postgresql", "asyncpg")
LITE = Target("sqlalchemy", "sqlite:///f.db", "sqlite", "aiosqlite")


def _report(outcome: str, text: str = "", when: str = "call") -> SimpleNamespace:
    return SimpleNamespace(
        failed=outcome == "failed",
        skipped=outcome == "skipped",
        when=when,
        longrepr=("file.py", 1, f"Skipped: {text}") if outcome == "skipped" else None,
    )


def test_cells_from_reports() -> None:
    assert Cell.from_report(_report("passed"), "handle").outcome == "pass"
    failed = Cell.from_report(_report("failed", when="setup"), "engine.connect")
    assert failed.outcome == "FAIL" and "engine.connect" in failed.reason
    closed = Cell.from_report(_report("skipped", "closed: no server"), "handle")
    assert (closed.outcome, closed.reason) == ("closed", "no server")
    skip = Cell.from_report(_report("skipped", "server not reachable"), "handle")
    assert (skip.outcome, skip.reason) == ("skip", "server not reachable")


def test_any_failing_entry_point_fails_the_cell() -> None:
    m = Matrix()
    m.add(SA, "max_size", Cell("pass", "", "handle"))
    m.add(SA, "max_size", Cell("FAIL", "call failed", "AsyncSession"))
    m.add(SA, "max_size", Cell("pass", "", "engine.connect"))
    cell = m.verdict("postgresql", SA.column, "max_size")
    assert cell is not None and cell.outcome == "FAIL" and cell.reason == "via AsyncSession"


def test_tables_per_backend_with_numbered_reasons() -> None:
    m = Matrix()
    m.add(PG, "connect", Cell("pass"))
    m.add(SA, "connect", Cell("pass"))
    m.add(
        SA,
        "refill",
        Cell(
            "skip",
            "fault row: enable with --faults (poolbridge check) or --poolbridge-faults (pytest)",
        ),
    )
    m.add(LITE, "pre_ping", Cell("closed", "SQLite has no server"))
    m.add(LITE, "connect", Cell("FAIL", "via handle"))
    text = "\n".join(m.render([LITE, PG, SA]))
    assert text.index("postgresql:") < text.index("sqlite:")  # stable backend order
    pg_table = text.split("sqlite:")[0]
    header = next(line for line in pg_table.splitlines() if line.startswith("requirement"))
    assert header.split() == ["requirement", "psycopg[psycopg]", "sqlalchemy[asyncpg]"]
    rows = {line.split()[0]: line.split()[1:] for line in pg_table.splitlines()[3:] if line}
    assert rows["connect"] == ["pass", "pass"]
    assert rows["refill"] == ["-", "skip", "[1]"]
    assert rows["max_size"] == ["-", "-"]
    assert (
        "[1] skip: fault row: enable with --faults (poolbridge check) or "
        "--poolbridge-faults (pytest)" in pg_table
    )
    lite = text.split("sqlite:")[1]
    assert "pre_ping" in lite and "closed [1]" in lite
    assert "[1] closed: SQLite has no server" in lite
    assert any(line.split()[:2] == ["connect", "FAIL"] for line in lite.splitlines() if line)
