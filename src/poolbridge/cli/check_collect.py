"""A tiny pytest plugin used by ``poolbridge check``: records every suite cell as JSON.

``poolbridge check`` runs the conformance suite in pytest subprocesses (one per matrix
column) with ``-p poolbridge.cli.check_collect``; this plugin writes one record per suite test
report to the file named by ``$POOLBRIDGE_CHECK_RESULTS``, so the parent can merge the
columns into one matrix without parsing pytest's terminal output. It reads only what the
suite's own plugin put on the item (the ``poolbridge_case`` parameter and the
``poolbridge_requirement`` mark) and is inert when the variable is unset.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

__all__ = [
    "RESULTS_ENV",
    "pytest_collection_modifyitems",
    "pytest_runtest_logreport",
    "pytest_sessionfinish",
]

#: environment variable naming the JSON file this plugin writes
RESULTS_ENV = "POOLBRIDGE_CHECK_RESULTS"
# one pytest session per process: module-level state is per run
_ITEMS: dict[str, tuple[Any, str, str]] = {}
_SESSION_RECORDS: list[dict[str, Any]] = []

#: longest failure text kept per record (the full text is in pytest's own output / JUnit)
_MAX_DETAIL = 1500


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Remember (target, entry point, requirement) of every suite item by node id."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        mark = item.get_closest_marker("poolbridge_requirement")
        param = callspec.params.get("poolbridge_case") if callspec is not None else None
        if isinstance(param, tuple) and mark is not None:
            target, point = param
            _ITEMS[item.nodeid] = (target, str(point), str(mark.args[0]))


def _detail(report: pytest.TestReport) -> str:
    if report.failed:
        crash = getattr(report.longrepr, "reprcrash", None)
        text = str(crash.message) if crash is not None else str(report.longrepr)
        return text[:_MAX_DETAIL]
    if report.skipped:
        longrepr = report.longrepr
        text = str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr)
        return text.removeprefix("Skipped: ")
    return ""


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """One record per outcome: the call phase, or a setup/teardown that did not pass."""
    if RESULTS_ENV not in os.environ:
        return
    known = _ITEMS.get(report.nodeid)
    if known is None or not (report.when == "call" or report.outcome != "passed"):
        return
    target, point, requirement = known
    _SESSION_RECORDS.append(
        {
            "backend": target.backend,
            "adapter": target.adapter_name,
            "driver": target.driver,
            "column": target.column,
            "requirement": requirement,
            "entry_point": point,
            "when": report.when,
            "outcome": report.outcome,  # passed | failed | skipped
            "detail": _detail(report),
            "duration": round(report.duration, 3),
            "nodeid": report.nodeid,
        }
    )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write the records (and pytest's exit status) to ``$POOLBRIDGE_CHECK_RESULTS``."""
    path = os.environ.get(RESULTS_ENV)
    if not path:
        return
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"exitstatus": int(exitstatus), "records": _SESSION_RECORDS}, fh)
