"""Known failures of the project's own fault tests (pgbouncer, stalled pre-ping, soak)."""

from __future__ import annotations

import pytest

from ._harness import Stack

#: (test function, stack id) -> why it fails today. Each becomes xfail(strict=True): the
#: failure stays visible in the report, and a fix makes the run fail until the entry is
#: removed. Tests are never loosened to pass (see docs/resilience.md).
KNOWN_FAILURES: dict[tuple[str, str], str] = {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        stack = callspec.params.get("stack") if callspec is not None else None
        if not isinstance(stack, Stack):
            continue
        name = getattr(item, "originalname", item.name)
        reason = KNOWN_FAILURES.get((name, stack.id))
        if reason is not None:
            item.add_marker(pytest.mark.xfail(reason=reason, strict=True))
