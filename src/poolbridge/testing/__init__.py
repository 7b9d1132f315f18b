"""poolbridge's conformance suite, shipped as a pytest plugin.

``pytest --poolbridge-adapter=NAME --poolbridge-dburl=URL`` (the plugin auto-loads through
the ``pytest11`` entry point ``poolbridge.testing``; ``-p poolbridge.testing`` names the same
plugin). The hooks are re-exported here so that ``-p poolbridge.testing`` also works where
the entry point is not installed: pytest registers one plugin under that name, never both.
"""

from __future__ import annotations

from poolbridge.testing.plugin import (
    poolbridge_case,
    pytest_addoption,
    pytest_collect_file,
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_generate_tests,
    pytest_runtest_makereport,
    pytest_terminal_summary,
    pytest_unconfigure,
)
from poolbridge.testing.requirements import KNOB_REQUIREMENTS, REQUIREMENTS, Requirement

__all__ = [
    "KNOB_REQUIREMENTS",
    "REQUIREMENTS",
    "Requirement",
    "poolbridge_case",
    "pytest_addoption",
    "pytest_collect_file",
    "pytest_collection_modifyitems",
    "pytest_configure",
    "pytest_generate_tests",
    "pytest_runtest_makereport",
    "pytest_terminal_summary",
    "pytest_unconfigure",
]
