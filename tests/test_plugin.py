"""The conformance plugin itself, tested with pytester: options and ini keys, inertness,
``-p poolbridge.testing``, closed reasons, the matrix, CI behaviour, pytest-asyncio modes."""

from __future__ import annotations

import os

import pytest

from poolbridge.adapters import registry
from poolbridge.testing.requirements import PARITY_REQUIREMENTS, REQUIREMENTS

pytest_plugins = ["pytester"]

FAST = "(test_connect and not timeout) or test_min_size"
CLOSED_PORT_URL = "postgresql://root@127.0.0.1:1/test"

FAKE_ADAPTER = """
from poolbridge.adapters.psycopg import PsycopgAdapter


class Fake(PsycopgAdapter):
    name = "pbfake"

    def closed_requirements(self, backend, driver):
        return {"min_size": "this fake stack never warms up"}


adapter = Fake()
"""


@pytest.fixture
def no_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)


def _matrix(text: str) -> str:
    assert "poolbridge conformance matrix" in text, text[-3000:]
    return text.split("poolbridge conformance matrix", 1)[1]


def test_inert_without_options(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_ok():\n    assert True\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    assert "collected 1 item" in out and "conformance matrix" not in out


def test_options_listed_in_help(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help")
    out = result.stdout.str()
    for flag in ("--poolbridge-adapter", "--poolbridge-dburl", "--poolbridge-faults"):
        assert flag in out
    for ini in ("poolbridge_adapter", "poolbridge_dburl", "poolbridge_faults"):
        assert ini in out


def test_adapter_without_dburl_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--poolbridge-adapter", "psycopg")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*needs at least one --poolbridge-dburl*"])


def test_unknown_adapter_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess(
        "--poolbridge-adapter", "nosuch", "--poolbridge-dburl", "sqlite://"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*no poolbridge adapter named 'nosuch'*"])


def test_empty_directory_collects_the_suite_and_prints_the_matrix(
    pytester: pytest.Pytester, pg_url: str
) -> None:
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--poolbridge-adapter", "psycopg",
        "--poolbridge-dburl", pg_url, "-k", FAST, "-v",
    )  # fmt: skip
    result.assert_outcomes(passed=3)  # connect x 2 entry points, min_size
    result.stdout.fnmatch_lines(
        [
            "*test_limits.py::test_connect?postgresql-psycopg?psycopg?-handle? PASSED*",
            "*test_limits.py::test_connect?postgresql-psycopg?psycopg?-pool.connection? PASSED*",
        ]
    )
    matrix = _matrix(result.stdout.str())
    assert "postgresql:" in matrix and "psycopg[psycopg]" in matrix
    lines = {line.split()[0]: line.split()[1:] for line in matrix.splitlines() if line.strip()}
    assert lines["connect"] == ["pass"] and lines["min_size"] == ["pass"]
    assert lines["max_size"] == ["-"]  # deselected: not run


def test_ini_keys(pytester: pytest.Pytester, pg_url: str) -> None:
    pytester.makeini(
        f"""
        [pytest]
        poolbridge_adapter = psycopg
        poolbridge_dburl =
            {pg_url}
        poolbridge_faults = true
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-k", "test_refill")
    result.assert_outcomes(passed=1)  # a fault row: it ran because the ini enabled faults
    assert "refill" in _matrix(result.stdout.str())


def test_fault_rows_skip_unless_enabled(pytester: pytest.Pytester, pg_url: str) -> None:
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--poolbridge-adapter", "psycopg",
        "--poolbridge-dburl", pg_url, "-k", "test_refill or test_pre_ping", "-rs",
    )  # fmt: skip
    result.assert_outcomes(skipped=3)
    matrix = _matrix(result.stdout.str())
    assert (
        "skip: fault row: enable with --faults (poolbridge check) or --poolbridge-faults (pytest)"
        in matrix
    )


@pytest.mark.parametrize("autoload", [True, False])
def test_dash_p_names_the_same_plugin(
    pytester: pytest.Pytester, pg_url: str, monkeypatch: pytest.MonkeyPatch, autoload: bool
) -> None:
    if not autoload:
        monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    result = pytester.runpytest_subprocess(
        "-p", "poolbridge.testing", "-p", "no:cacheprovider", "--poolbridge-adapter",
        "psycopg", "--poolbridge-dburl", pg_url, "-k", "test_min_size",
    )  # fmt: skip
    result.assert_outcomes(passed=1)
    _matrix(result.stdout.str())


def test_package_reexports_the_plugin_hooks() -> None:
    import poolbridge.testing as pkg
    from poolbridge.testing import plugin

    hooks = [n for n in vars(plugin) if n.startswith("pytest_")]
    assert hooks
    for name in hooks:
        assert getattr(pkg, name) is getattr(plugin, name)


@pytest.mark.parametrize("mode", ["strict", "auto", "no-plugin"])
def test_independent_of_pytest_asyncio_mode(
    pytester: pytest.Pytester, pg_url: str, mode: str
) -> None:
    extra = ["-p", "no:asyncio"] if mode == "no-plugin" else ["-o", f"asyncio_mode={mode}"]
    result = pytester.runpytest_subprocess(
        *extra, "-p", "no:cacheprovider", "--poolbridge-adapter", "psycopg",
        "--poolbridge-dburl", pg_url, "-k", "test_fairness and handle",
    )  # fmt: skip
    result.assert_outcomes(passed=1)


def test_closed_requirements_reported_as_closed(
    pytester: pytest.Pytester, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(pbfake_adapter=FAKE_ADAPTER)
    pytester.syspathinsert()
    monkeypatch.setitem(registry.BUILTIN_ADAPTERS, "pbfake", "pbfake_adapter")
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "-o", "asyncio_default_fixture_loop_scope=function",
        "--poolbridge-adapter", "pbfake",
        "--poolbridge-dburl", pg_url, "-k", FAST, "-rs",
    )  # fmt: skip
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines(["*closed: this fake stack never warms up*"])
    matrix = _matrix(result.stdout.str())
    assert "pbfake[psycopg]" in matrix
    row = next(line for line in matrix.splitlines() if line.startswith("min_size"))
    assert row.split()[1:] == ["closed", "[1]"]
    assert "[1] closed: this fake stack never warms up" in matrix


def test_custom_python_files_still_collects_the_suite(
    pytester: pytest.Pytester, pg_url: str
) -> None:
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-o", "python_files=check_*.py", "--poolbridge-adapter",
        "psycopg", "--poolbridge-dburl", pg_url, "-k", "test_min_size",
    )  # fmt: skip
    result.assert_outcomes(passed=1)


def test_closed_port_skips_locally(pytester: pytest.Pytester, no_ci: None) -> None:
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--poolbridge-adapter", "psycopg",
        "--poolbridge-dburl", CLOSED_PORT_URL, "-k", FAST,
    )  # fmt: skip
    result.assert_outcomes(skipped=3)
    assert result.ret == pytest.ExitCode.OK
    matrix = _matrix(result.stdout.str())
    assert "skip: postgresql server not reachable on 127.0.0.1:1" in matrix


def test_closed_port_fails_under_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--poolbridge-adapter", "psycopg",
        "--poolbridge-dburl", CLOSED_PORT_URL, "-k", FAST,
    )  # fmt: skip
    result.assert_outcomes(errors=3)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "CI=true: a missing server is a failure" in result.stdout.str()
    row = next(line for line in _matrix(result.stdout.str()).splitlines()
               if line.startswith("connect"))  # fmt: skip
    assert row.split()[1] == "FAIL"


def test_all_means_every_installed_adapter(pytester: pytest.Pytester, no_ci: None) -> None:
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--poolbridge-adapter", "all",
        "--poolbridge-dburl", CLOSED_PORT_URL, "--collect-only", "-q",
    )  # fmt: skip
    out = result.stdout.str()
    for name in registry.adapter_names(installed_only=True):
        if "postgresql" in registry.get_adapter(name).drivers:
            assert f"-{name}[" in out, name


def test_env_is_clean_of_ci_for_local_runs() -> None:
    # guards the two tests above: they set/unset CI themselves, the suite must not leak it
    assert os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD") is None


BROKEN_ADAPTER = """
from poolbridge.adapters.psycopg import PsycopgAdapter


class Broken(PsycopgAdapter):
    name = "pbbroken"

    async def fetch_scalar(self, conn, sql):
        value = await super().fetch_scalar(conn, sql)
        return -1 if sql == "SELECT 41 + 1" else value


adapter = Broken()
"""


def test_failures_keep_passwords_out_of_the_report(
    pytester: pytest.Pytester, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import re
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(pg_url)
    user = parts.username or "root"
    host = f"{parts.hostname}:{parts.port or 5432}"
    secret_url = urlunsplit(parts._replace(netloc=f"{user}:pbsecret4242@{host}"))
    pytester.makepyfile(pbbroken_adapter=BROKEN_ADAPTER)
    pytester.syspathinsert()
    monkeypatch.setitem(registry.BUILTIN_ADAPTERS, "pbbroken", "pbbroken_adapter")
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "-o", "asyncio_default_fixture_loop_scope=function",
        "--poolbridge-adapter", "pbbroken", "--poolbridge-dburl", secret_url,
        "-k", "test_connect and handle and not timeout", "--showlocals", "--tb=long",
    )  # fmt: skip
    result.assert_outcomes(failed=1)
    out = result.stdout.str() + result.stderr.str()
    assert "assert -1 == 42" in out  # the failure itself is reported...
    assert "pbsecret4242" not in out  # ...without the dburl's password
    assert not re.search(r"pb_[0-9a-f]{10}:[0-9a-f]{24}", out), "a test role's password leaked"
    row = next(line for line in _matrix(out).splitlines() if line.startswith("connect"))
    assert row.split()[1] == "FAIL"


def test_suite_replaces_default_paths_and_joins_explicit_ones(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mine="def test_mine():\n    pass\n")
    opts = ["-p", "no:cacheprovider", "--collect-only", "-q",
            "--poolbridge-adapter", "psycopg", "--poolbridge-dburl", CLOSED_PORT_URL]  # fmt: skip
    default = pytester.runpytest_subprocess(*opts).stdout.str()
    assert "test_min_size_after_open" in default and "test_mine" not in default
    explicit = pytester.runpytest_subprocess(*opts, "test_mine.py").stdout.str()
    assert "test_min_size_after_open" in explicit and "test_mine.py::test_mine" in explicit


def test_bad_dburl_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess(
        "--poolbridge-adapter", "psycopg", "--poolbridge-dburl", "nope://x"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --poolbridge-dburl: 1 problem*", "*url must start with a known scheme*"]
    )


def test_package_module_alone_is_a_complete_plugin(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ``-p poolbridge.testing`` registers where the entry point is not installed."""
    import poolbridge.testing as pkg

    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--collect-only", "-q", "--poolbridge-adapter", "psycopg",
        "--poolbridge-dburl", CLOSED_PORT_URL, plugins=[pkg],
    )  # fmt: skip
    result.stdout.fnmatch_lines(["*test_limits.py::test_min_size_after_open*"])


FAKE_TWIN = """
import contextlib

from poolbridge.adapters.base import StackSide, StockTwin
from poolbridge.adapters.psycopg import PsycopgAdapter


class Side(StackSide):
    def __init__(self, error):
        self.error = error
        self.closed = False

    async def connect(self):
        pass

    async def scalar(self, sql):
        if self.closed:
            raise self.error("closed")
        return 1

    def hold(self):
        return contextlib.nullcontext()

    async def close(self):
        self.closed = True


class StockError(RuntimeError):
    pass


class Twin(StockTwin):
    async def stock(self, spec):
        return Side(StockError)

    async def ours(self, spec):
        return Side(OURS)


class Fake(PsycopgAdapter):
    name = "pbfake"
    stock_twin_path = "pbfake_twin:Twin"


adapter = Fake()
"""


@pytest.mark.parametrize(("ours", "outcome"), [("KeyError", "FAIL"), ("StockSub", "pass")])
def test_third_party_stock_twin_is_held_to_the_parity_rows(
    pytester: pytest.Pytester, pg_url: str, monkeypatch: pytest.MonkeyPatch, ours: str,
    outcome: str,
) -> None:  # fmt: skip
    source = FAKE_TWIN.replace("OURS", ours)
    source += "\n\nclass StockSub(StockError):\n    pass\n"
    pytester.makepyfile(pbfake_twin=source)
    pytester.syspathinsert()
    monkeypatch.setitem(registry.BUILTIN_ADAPTERS, "pbfake", "pbfake_twin")
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "-o", "asyncio_default_fixture_loop_scope=function",
        "--poolbridge-adapter", "pbfake", "--poolbridge-dburl", pg_url,
        "--poolbridge-requirement", "parity_closed",
    )  # fmt: skip
    # --poolbridge-requirement: the one row runs, every other is deselected
    deselected = result.parseoutcomes()["deselected"]
    assert deselected > len(REQUIREMENTS) - 2
    if outcome == "FAIL":
        result.assert_outcomes(failed=1, deselected=deselected)
        result.stdout.fnmatch_lines(["*stock raised pbfake_twin.StockError, poolbridge *KeyError*"])
    else:
        result.assert_outcomes(passed=1, deselected=deselected)
    row = next(
        line for line in _matrix(result.stdout.str()).splitlines()
        if line.startswith("parity_closed")
    )  # fmt: skip
    assert row.split()[1:] == [outcome]


def test_parity_rows_closed_without_a_stock_twin(pytester: pytest.Pytester, pg_url: str) -> None:
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--poolbridge-adapter", "psycopg",
        "--poolbridge-dburl", pg_url, "--poolbridge-requirement", "parity_*", "-rs",
    )  # fmt: skip
    result.assert_outcomes(skipped=len(PARITY_REQUIREMENTS))
    matrix = _matrix(result.stdout.str())
    for req in PARITY_REQUIREMENTS:
        row = next(line for line in matrix.splitlines() if line.startswith(req.name + " "))
        assert row.split()[1] == "closed", row
    assert "the adapter has no stock twin" in matrix


# -- the high-availability rows: their pairs ------------------------------------------------

#: a "pair" whose two hosts refuse connections: no pair can be had
NO_PAIR_URL = "postgresql://root@127.0.0.1:1,127.0.0.1:2/test"


@pytest.mark.parametrize("ci", [False, True])
def test_ha_rows_without_a_pair_skip_locally_and_fail_under_ci(
    pytester: pytest.Pytester, pg_url: str, monkeypatch: pytest.MonkeyPatch, ci: bool
) -> None:
    if ci:
        monkeypatch.setenv("CI", "true")
    else:
        monkeypatch.delenv("CI", raising=False)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--poolbridge-adapter", "asyncpg",
        "--poolbridge-dburl", pg_url, "--poolbridge-ha-dburl", NO_PAIR_URL,
        "--poolbridge-requirement", "target_*", "--poolbridge-requirement", "!target_standby",
    )  # fmt: skip
    out = result.stdout.str()
    row = next(line for line in _matrix(out).splitlines() if line.startswith("target_primary"))
    standby = next(line for line in _matrix(out).splitlines() if line.startswith("target_standby"))
    assert standby.split()[1] == "-", "the '!' pattern deselects the row"
    if ci:
        result.assert_outcomes(failed=1)
        assert row.split()[1] == "FAIL"
        assert "CI=true: a replicated pair that cannot start is a failure" in out
    else:
        result.assert_outcomes(skipped=1)
        assert row.split()[1] == "skip"
        assert "--poolbridge-ha-dburl for postgresql: 127.0.0.1:1:" in _matrix(out)


def test_ha_dburl_is_validated(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess(
        "--poolbridge-adapter", "asyncpg", "--poolbridge-dburl", "sqlite://",
        "--poolbridge-ha-dburl", "nosuch://x",
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--poolbridge-ha-dburl: 1 problem*", "*known scheme*"])
