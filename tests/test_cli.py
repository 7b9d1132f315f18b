"""The ``poolbridge`` command line, run as a real subprocess (plus the subcommand registry)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import poolbridge
from poolbridge import cli
from poolbridge.engine.build import build_name

ACCEPTANCE_URL = (
    "postgresql://app:s3cret@127.0.0.1/test?max_size=20&acquire_timeout=5s&sslmode=require"
)
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "poolbridge.toml"


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("POOLBRIDGE_")}
    return subprocess.run(
        [sys.executable, "-m", "poolbridge", *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_acceptance_url_with_options(tmp_path: Path) -> None:
    r = run("config", "show", "--url", ACCEPTANCE_URL, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0]: line.split()[1:] for line in r.stdout.splitlines()[2:] if line}
    assert rows["max_size"][0] == "20" and rows["max_size"][1] == "url"
    assert rows["acquire_timeout"][0] == "5.0"
    assert rows["url"][0] == "postgresql://app:***@127.0.0.1/test?sslmode=require"
    assert "sslmode=require" in r.stdout.splitlines()[-1]
    assert "s3cret" not in r.stdout + r.stderr


def test_json_output(tmp_path: Path) -> None:
    r = run("config", "show", "--url", ACCEPTANCE_URL, "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["config"]["max_size"] == 20 and data["config"]["acquire_timeout"] == 5.0
    assert data["driver_query"] == {"sslmode": "require"}
    assert data["sources"]["max_size"]["kind"] == "url"
    assert data["sources"]["url"] == {"kind": "argument", "detail": "--url"}
    assert data["sources"]["min_size"]["kind"] == "default"
    assert "s3cret" not in r.stdout


def test_bad_input_exits_2_without_traceback(tmp_path: Path) -> None:
    r = run(
        "config", "show", "--url", "postgresql://app:s3cret@h/db?max_size=0&acquire_timeout=x",
        cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 2
    assert "max_size must be >= 1 (got '0')" in r.stderr
    assert "acquire_timeout must be a number of seconds" in r.stderr
    assert "Traceback" not in r.stderr and "s3cret" not in r.stderr + r.stdout
    r = run("config", "show", cwd=tmp_path)  # no URL anywhere
    assert r.returncode == 2 and "url is required" in r.stderr
    r = run("config", "show", "--config", "missing.toml", cwd=tmp_path)
    assert r.returncode == 2 and "not found" in r.stderr
    r = run("config", "show", "--bogus", cwd=tmp_path)
    assert r.returncode == 2 and "unrecognized arguments" in r.stderr
    r = run("config", cwd=tmp_path)
    assert r.returncode == 2 and "show" in r.stderr


def test_file_pool_and_env_sources(tmp_path: Path) -> None:
    (tmp_path / "poolbridge.toml").write_text(
        'url = "mysql://root:${DB_PW}@127.0.0.1/test"\nmax_size = 4\n'
        '[pools.replica]\nurl = "mysql://ro:${DB_PW}@127.0.0.1/test"\nmin_size = 0\n'
    )
    env = {"DB_PW": "hunter22", "POOLBRIDGE_REPLICA__MAX_IDLE": "90s"}
    r = run("config", "show", "--pool", "replica", "--json", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["pool"] == "replica" and data["config"]["max_size"] == 4
    assert data["config"]["max_idle"] == 90.0 and data["config"]["min_size"] == 0
    assert data["sources"]["max_idle"] == {"kind": "env", "detail": "POOLBRIDGE_REPLICA__MAX_IDLE"}
    assert data["sources"]["min_size"]["detail"].endswith("[pools.replica]")
    assert data["config"]["url"] == "mysql://ro:***@127.0.0.1/test"
    assert "hunter22" not in r.stdout + r.stderr
    r = run("config", "show", "--pool", "replica", cwd=tmp_path, env={})
    assert r.returncode == 2 and "DB_PW" in r.stderr


def test_example_file_loads_for_every_pool(tmp_path: Path) -> None:
    for pool in ("default", "replica", "local"):
        r = run("config", "show", "--config", str(EXAMPLE), "--pool", pool, "--json", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["pool"] == pool


def test_adapter_translations_are_redacted_and_failures_reported(tmp_path: Path) -> None:
    r = run(
        "config", "show", "--url", ACCEPTANCE_URL, "--adapter", "nosuch", "--adapter", "all",
        "--json", cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode in (0, 1), r.stderr  # 1 only if an adapter itself crashed
    data = json.loads(r.stdout)
    assert data["adapters"]["nosuch"]["status"] == "unavailable"
    assert "no poolbridge adapter named 'nosuch'" in data["adapters"]["nosuch"]["reason"]
    from poolbridge.adapters.registry import adapter_names

    assert set(adapter_names()) <= set(data["adapters"])
    for name, report in data["adapters"].items():
        assert report["status"] in ("ok", "unavailable", "unsupported", "error"), name
    assert "s3cret" not in r.stdout + r.stderr
    assert "Traceback" not in r.stderr


def test_version_and_schema(tmp_path: Path) -> None:
    r = run("--version", cwd=tmp_path)
    # the version, and which build of the pool engine runs (pure Python or compiled)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"poolbridge {poolbridge.__version__} (pool engine: {build_name()})"
    r = run("config", "schema", cwd=tmp_path)
    assert r.returncode == 0
    schema = json.loads(r.stdout)
    props = schema["properties"]
    assert {"url", "max_size", "retry", "pools"} <= set(props)
    assert schema["additionalProperties"] is False
    assert props["pools"]["additionalProperties"] == {"$ref": "#/$defs/pool"}
    assert props["reset"]["enum"] == ["rollback", "full"]


def test_console_script_is_installed(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("poolbridge")
    if not script.exists():
        pytest.skip("console script not installed in this environment")
    r = subprocess.run(
        [str(script), "config", "show", "--url", ACCEPTANCE_URL], capture_output=True, text=True,
        cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0 and "s3cret" not in r.stdout and "20" in r.stdout


def test_subcommand_registry_is_extensible(capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[str] = []

    @cli.subcommand("demo hello", help="say hello", args=[cli.arg("--who", default="world")])
    def hello(ns: object) -> int:
        seen.append(getattr(ns, "who"))  # noqa: B009
        return 3

    try:
        assert cli.main(["demo", "hello", "--who", "pool"]) == 3
        assert seen == ["pool"]
        assert cli.main(["demo"]) == 2  # a group alone prints its help
        assert "hello" in capsys.readouterr().err
    finally:
        del cli.SUBCOMMANDS[("demo", "hello")]
