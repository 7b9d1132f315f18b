"""`make test` runs the shipped conformance suite against the real servers.

One test per adapter x backend, each a pytest subprocess started in an empty directory with
``--poolbridge-adapter``/``--poolbridge-dburl``/``--poolbridge-faults`` (the way a user runs
it). It passes when the run passes: every row pass or closed, no failure. The matrix is
printed (``pytest -s`` shows it; a failure shows it too). Locally an adapter that is not in
the tree yet is skipped; under CI=true every listed adapter must be present.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

from poolbridge.core.registry import BUILTIN_ADAPTERS

pytest_plugins = ["pytester"]

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

#: (adapter, backend fixture): the columns `make test` proves
COLUMNS = [
    ("psycopg", "pg_url"),
    ("sqlalchemy", "pg_url"),
    ("sqlalchemy", "mysql_url"),
    ("sqlalchemy", "sqlite_url"),
    ("asyncpg", "pg_url"),
    ("aiopg", "pg_url"),
    ("aiomysql", "mysql_url"),
    ("asyncmy", "mysql_url"),
    ("aiosqlite", "sqlite_url"),
]


def _matrix(text: str) -> str:
    marker = "poolbridge conformance matrix"
    return text.split(marker, 1)[1] if marker in text else "(no matrix printed)"


@pytest.mark.server
@pytest.mark.timeout(300)
@pytest.mark.parametrize(("adapter", "url_fixture"), COLUMNS)
def test_suite_passes(
    pytester: pytest.Pytester, request: pytest.FixtureRequest, adapter: str, url_fixture: str
) -> None:
    if importlib.util.find_spec(BUILTIN_ADAPTERS[adapter]) is None:
        msg = f"adapter module {BUILTIN_ADAPTERS[adapter]} is not in the tree"
        if IN_CI:
            pytest.fail(f"{msg} (CI=true: every listed adapter must be present)")
        pytest.skip(msg)
    url = request.getfixturevalue(url_fixture)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-q", "-W", "ignore::DeprecationWarning",
        "--poolbridge-adapter", adapter, "--poolbridge-dburl", url, "--poolbridge-faults",
    )  # fmt: skip
    out = result.stdout.str()
    matrix = _matrix(out)
    print(matrix)
    failures = [line for line in out.splitlines() if line.startswith(("FAILED", "ERROR"))]
    assert result.ret == pytest.ExitCode.OK, "\n".join([matrix, *failures])
    rows = [line.split() for line in matrix.splitlines() if line[:1].isalpha()]
    cells = [cell for row in rows if len(row) > 1 for cell in row[1:]]
    assert "FAIL" not in cells
    assert "pass" in cells, matrix
    assert "skip" not in cells, f"servers are up and faults enabled: nothing may skip\n{matrix}"
