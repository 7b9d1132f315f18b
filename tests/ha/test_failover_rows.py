"""The ``failover`` conformance row on every stack, the way a user runs it:
``poolbridge check --faults --requirement failover`` against the test servers (which the row
does not touch: each column kills and promotes a fresh replicated pair of its own). A soak
test: every column starts two servers. Prints the recovery time of each column (the row
records it as the JUnit property ``failover_recovery_seconds``; docs/high-availability.md
quotes them)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from poolbridge.adapters.registry import get_adapter
from poolbridge.testing.requirements import ha_refusal
from tests.test_check import run_check

pytestmark = [pytest.mark.server, pytest.mark.soak, pytest.mark.timeout(1800)]


def test_failover_row_passes_on_every_stack_that_routes(
    tmp_path: Path, pg_url: str, mysql_url: str
) -> None:
    out_json, out_xml = tmp_path / "r.json", tmp_path / "r.xml"
    r = run_check(pg_url, mysql_url, "--adapter", "all", "--faults", "--requirement", "failover",
                  "--jobs", "2", "--json", str(out_json), "--junit", str(out_xml),
                  cwd=tmp_path, timeout=1700)  # fmt: skip
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
    doc = json.loads(out_json.read_text())
    seen: dict[str, str] = {}
    for cell in doc["cells"]:
        assert cell["requirement"] == "failover", cell
        adapter = get_adapter(cell["adapter"])
        refused = ha_refusal(adapter, cell["backend"], cell["driver"])
        want = "closed" if refused else "pass"
        assert cell["outcome"] == want, cell
        seen[f"{cell['column']} on {cell['backend']}"] = cell["outcome"]
    passed = [k for k, v in seen.items() if v == "pass"]
    assert {"psycopg[psycopg] on postgresql", "asyncpg[asyncpg] on postgresql",
            "aiopg[aiopg] on postgresql", "aiomysql[aiomysql] on mysql",
            "asyncmy[asyncmy] on mysql"} <= set(passed), seen  # fmt: skip
    times: dict[str, float] = {}
    for case in ET.parse(out_xml).getroot().iter("testcase"):
        for prop in case.iter("property"):
            if prop.get("name") == "failover_recovery_seconds":
                times[str(case.get("name"))] = float(prop.get("value", "nan"))
    assert len(times) == len(passed), times
    for name, seconds in sorted(times.items()):
        print(
            f"failover {name}: writes served by the promoted standby {seconds:.2f}s after the kill"
        )
