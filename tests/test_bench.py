"""``poolbridge bench --quick`` against the real servers: the shape of its JSON records.

No speed assertions (the machine is shared): the records must be complete, the ratios
positive finite numbers, the filters honoured, the plot written and the benchmark's table
dropped on both servers afterwards. The benchmark runs from the installed package alone,
against the URLs it is given; its hand variants use each stack's own API (never
poolbridge's translation) with the same autocommit as the poolbridge variant.
"""

from __future__ import annotations

import ast
import asyncio
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

STACKS = ("asyncpg", "sqlalchemy[aiomysql]")


def run_bench(
    *args: str, cwd: Path, pg_url: str, mysql_url: str, pythonpath: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "POOLBRIDGE_TEST_PG_URL": pg_url, "POOLBRIDGE_TEST_MYSQL_URL": mysql_url}
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    return subprocess.run(
        [sys.executable, "-m", "poolbridge", "bench", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def table_exists(pg_url: str, mysql_url: str, table: str) -> dict[str, bool]:
    import asyncio

    import aiomysql
    import asyncpg

    async def check() -> dict[str, bool]:
        pg = await asyncpg.connect(pg_url)
        try:
            in_pg = await pg.fetchval("SELECT to_regclass($1) IS NOT NULL", table)
        finally:
            await pg.close()
        my = await aiomysql.connect(
            host="127.0.0.1", port=3306, user="root", password="", db="test"
        )
        try:
            async with my.cursor() as cur:
                await cur.execute(
                    "SELECT COUNT(*) FROM information_schema.TABLES"
                    " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
                    (table,),
                )
                (count,) = await cur.fetchone()
        finally:
            my.close()
        return {"postgresql": bool(in_pg), "mysql": count > 0}

    return asyncio.run(check())


def test_quick_bench_records(tmp_path: Path, pg_url: str, mysql_url: str) -> None:
    args = ["--quick", "--json", "out.json", "--png", "out.png"]
    for stack in STACKS:
        args += ["--stack", stack]
    r = run_bench(*args, cwd=tmp_path, pg_url=pg_url, mysql_url=mysql_url)
    assert r.returncode == 0, r.stderr[-2000:]
    records = json.loads((tmp_path / "out.json").read_text())
    cells = {(rec["stack"], rec["backend"], rec["query"], rec["concurrency"]) for rec in records}
    expected = {
        (s, b, q, c)
        for s, b in (("asyncpg", "postgresql"), ("sqlalchemy[aiomysql]", "mysql"))
        for q, c in [
            ("select1", 1),
            ("select1", 10),
            ("select1", 100),
            ("orm", 1),
            ("orm", 10),
            ("orm", 100),
            ("acquire", 1),
        ]
    }
    assert cells == expected, r.stderr[-2000:]
    assert len(records) == len(expected)
    for rec in records:
        for key in ("qps", "qps_hand", "qps_raw", "ratio_vs_hand", "ratio_vs_raw"):
            value = rec[key]
            assert isinstance(value, float | int) and math.isfinite(value) and value > 0, rec
        lo, hi = rec["spread"]
        assert 0 < lo <= rec["qps"] <= hi, rec
        assert rec["rounds"] == 1
        for other in ("hand", "raw"):
            rlo, rhi = rec[f"ratio_vs_{other}_spread"]
            assert 0 < rlo <= rhi
        if rec["query"] == "acquire":
            assert all(us > 0 for us in rec["us_per_pair"].values()), rec
    assert (tmp_path / "out.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "vs hand" in r.stdout and "asyncpg" in r.stdout
    # the benchmark's own table, created once per backend, is gone on both servers
    match = re.search(r"^table (pb_bench_[0-9a-f]+) on ", r.stdout, re.MULTILINE)
    assert match, r.stdout[:500]
    assert table_exists(pg_url, mysql_url, match.group(1)) == {"postgresql": False, "mysql": False}


def test_unknown_stack_is_an_error(tmp_path: Path, pg_url: str, mysql_url: str) -> None:
    r = run_bench("--quick", "--stack", "nosuch", cwd=tmp_path, pg_url=pg_url, mysql_url=mysql_url)
    assert r.returncode == 2
    assert "unknown stack" in r.stderr and "sqlalchemy[asyncpg]" in r.stderr
    assert not (tmp_path / "out.json").exists()


pytestmark = pytest.mark.timeout(150)


@pytest.mark.server
def test_roundtrips_per_operation(pg_url: str, mysql_url: str) -> None:
    """benchmarks/roundtrips.py counts exchanges through its proxy: asyncpg's own Pool sends
    its reset query at every release (one round trip more than the query), poolbridge's
    engine does not when no transaction is open; aiomysql with autocommit needs one."""
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "roundtrips.py"
    env = {**os.environ, "POOLBRIDGE_TEST_PG_URL": pg_url, "POOLBRIDGE_TEST_MYSQL_URL": mysql_url}
    r = subprocess.run(
        [sys.executable, str(script), "--stack", "asyncpg", "--stack", "aiomysql",
         "--query", "select1", "--n", "5", "25"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    rows = {line.split()[0]: line.split()[1:] for line in r.stdout.splitlines()[1:]}
    assert rows["asyncpg:select1:1"] == ["1.00", "2.00", "2.00"], r.stdout
    assert rows["aiomysql:select1:1"] == ["1.00", "1.00", "1.00"], r.stdout


def test_runs_from_the_package_alone_against_the_given_url(
    tmp_path: Path, pg_url: str, mysql_url: str
) -> None:
    """A copy of the package with no checkout around it (as in site-packages) measures the
    server named by --postgresql; the variables of the test suite point nowhere."""
    import poolbridge

    site = tmp_path / "site"
    shutil.copytree(Path(poolbridge.__file__).parent, site / "poolbridge")
    nowhere = "postgresql://root@127.0.0.1:1/test"
    r = run_bench(
        "--quick", "--stack", "asyncpg", "--postgresql", pg_url, "--json", "out.json",
        cwd=tmp_path, pg_url=nowhere, mysql_url="mysql://root@127.0.0.1:1/test",
        pythonpath=str(site),
    )  # fmt: skip
    assert r.returncode == 0, r.stdout[-1000:] + r.stderr[-2000:]
    records = json.loads((tmp_path / "out.json").read_text())
    assert {(rec["stack"], rec["backend"]) for rec in records} == {("asyncpg", "postgresql")}
    where = subprocess.run(
        [sys.executable, "-c", "import poolbridge.cli.bench.run as m; print(m.__file__)"],
        env={**os.environ, "PYTHONPATH": str(site)}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert where.stdout.startswith(str(site)), where.stdout  # the copy is what ran


HAND_MUST_NOT_USE = {"engine_kwargs", "native_arguments", "pool_options", "conninfo_kwargs",
                     "tortoise_config", "pool_params", "database"}  # fmt: skip


def test_hand_variants_do_not_use_poolbridge_translation() -> None:
    """The stacks import from poolbridge only what opens the poolbridge variant (open_pool,
    PoolConfig, the Tortoise initialiser) and the benchmark's own modules."""
    import poolbridge.cli.bench as pkg

    allowed = {"poolbridge": {"PoolConfig", "open_pool"},
               "poolbridge.adapters.tortoise": {"init"}}  # fmt: skip
    problems = []
    for name in ("drivers.py", "orm.py"):
        tree = ast.parse((Path(pkg.__file__).parent / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("poolbridge"):
                module = node.module or ""
                if module.startswith("poolbridge.cli.bench"):
                    continue
                names = {a.name for a in node.names}
                if not names <= allowed.get(module, set()) or names & HAND_MUST_NOT_USE:
                    problems.append(f"{name}: from {module} import {sorted(names)}")
    assert not problems, problems


async def _autocommit(conn: Any) -> bool:
    if hasattr(conn, "autocommit") and not callable(conn.autocommit):  # psycopg
        return bool(conn.autocommit)
    async with conn.cursor() as cur:  # aiomysql, asyncmy: ask the server
        await cur.execute("SELECT @@autocommit")
        (value,) = await cur.fetchone()
    return bool(int(value))


@pytest.mark.server
@pytest.mark.parametrize("stack", ["psycopg", "psycopg[native]", "aiomysql", "asyncmy"])
def test_hand_and_poolbridge_variants_share_autocommit(
    stack: str, pg_url: str, mysql_url: str
) -> None:
    from poolbridge.cli.bench import drivers, run

    drivers.set_urls({"postgresql": pg_url, "mysql": mysql_url})
    key = next(s for s in run.STACKS if s[0] == stack)

    async def autocommit(variant: str) -> bool:
        async with run.STACKS[key](variant) as ops, ops.acquire() as conn:
            return await _autocommit(conn)

    async def both() -> dict[str, bool]:
        return {v: await autocommit(v) for v in run.VARIANTS}

    got = asyncio.run(both())
    assert got["poolbridge"] == got["hand"] == got["raw"], got
