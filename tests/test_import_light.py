"""``import poolbridge`` (and the config CLI) load nothing outside the standard library."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
before = set(sys.modules)  # interpreter start-up (site hooks such as _distutils_hack)
{body}
third = sorted({{
    name.split(".")[0] for name in set(sys.modules) - before
    if name.split(".")[0] not in sys.stdlib_module_names and name.split(".")[0] != "poolbridge"
}})
print(json.dumps(third))
"""


def third_party_after(body: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(body=body)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    loaded: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return loaded


def test_import_poolbridge_is_stdlib_only() -> None:
    assert third_party_after("import poolbridge") == []


def test_core_modules_and_config_cli_are_stdlib_only() -> None:
    body = (
        "import poolbridge.config.loaders, poolbridge.config.schema, poolbridge.config.redact\n"
        "import poolbridge.cli\n"
        "from poolbridge.cli import main\n"
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    rc = main(['config', 'show', '--url', 'postgresql://h/db?max_size=3'])\n"
        "    main(['config', 'schema'])\n"
        "assert rc == 0, rc\n"
    )
    assert third_party_after(body) == []


def test_the_probe_detects_third_party_modules() -> None:
    # guard against a probe that can never fail: pytest itself is third-party
    assert "pytest" in third_party_after("import pytest")
