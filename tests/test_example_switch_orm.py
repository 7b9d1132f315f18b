"""examples/switch_orm: one poolbridge.toml, three ORMs, the same limits — proven server-side.

Each app runs as its own process (as a user would run it) against PostgreSQL and MariaDB,
logged in as a role created for this test with a server-side connection limit equal to
max_size: one connection too many and the server refuses it, failing the app. A sampler
counts that role's connections while the app runs, and after it exits none may be left.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from .tortoise.serverside import alive_after_close, execute

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "switch_orm"
MAX_SIZE = 4  # examples/switch_orm/poolbridge.toml
APPS = ["app_sqlalchemy.py", "app_tortoise.py", "app_peewee.py"]


async def _count_role(url: str, role: str) -> int:
    if url.startswith("postgresql"):
        import asyncpg

        conn = await asyncpg.connect("postgresql://root@127.0.0.1:5432/test")
        try:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE usename = $1", role
                )
            )
        finally:
            await conn.close()
    import aiomysql

    conn = await aiomysql.connect(host="127.0.0.1", port=3306, user="root", db="test")
    try:
        async with conn.cursor() as cur:
            await cur.execute(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = %s", (role,)
            )
            row = await cur.fetchone()
            return int(row[0])
    finally:
        conn.close()


async def _create_role(url: str, role: str) -> str:
    """A login role limited to MAX_SIZE connections; returns the URL to log in with."""
    if url.startswith("postgresql"):
        await execute(url, f"CREATE ROLE {role} LOGIN CONNECTION LIMIT {MAX_SIZE}")
        await execute(url, f"GRANT USAGE, CREATE ON SCHEMA public TO {role}")
        return f"postgresql://{role}@127.0.0.1:5432/test"
    await execute(url, f"CREATE USER '{role}'@'%' WITH MAX_USER_CONNECTIONS {MAX_SIZE}")
    await execute(url, f"GRANT ALL ON test.* TO '{role}'@'%'")
    return f"mysql://{role}@127.0.0.1:3306/test"


async def _drop_role(url: str, role: str) -> None:
    if url.startswith("postgresql"):
        await execute(url, f"DROP OWNED BY {role}")
        await execute(url, f"DROP ROLE IF EXISTS {role}")
    else:
        await execute(url, f"DROP USER IF EXISTS '{role}'@'%'")


async def _run_app(
    app: str, env: dict[str, str], url: str, role: str
) -> tuple[dict[str, Any], int]:
    """Run one app; returns its report and the most connections the role had at once."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, app, cwd=EXAMPLE, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    peak = 0

    async def sample() -> None:
        nonlocal peak
        while proc.returncode is None:
            peak = max(peak, await _count_role(url, role))
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    out, err = await asyncio.wait_for(proc.communicate(), timeout=90)
    await sampler
    assert proc.returncode == 0, err.decode()[-3000:]
    report = json.loads(out.decode().strip().splitlines()[-1])
    return report, peak


@pytest.mark.asyncio
@pytest.mark.parametrize("which", ["pg_url", "mysql_url"])
async def test_three_orms_one_config_stay_within_max_size(
    request: pytest.FixtureRequest, which: str
) -> None:
    pytest.importorskip("poolbridge.adapters.sqlalchemy")
    admin_url = str(request.getfixturevalue(which))
    role = f"pb_sw_{uuid.uuid4().hex[:10]}"
    login_url = await _create_role(admin_url, role)
    try:
        for app in APPS:
            env = dict(os.environ)
            env.update(
                POOLBRIDGE_URL=login_url,
                POOLBRIDGE_NAME=role,
                SWITCH_ORM_TABLE=f"{role}_{app.removesuffix('.py').removeprefix('app_')}",
                PYTHONPATH=os.pathsep.join([str(EXAMPLE), env.get("PYTHONPATH", "")]),
            )
            report, peak = await _run_app(app, env, admin_url, role)
            assert report["max_size"] == MAX_SIZE, app
            assert report["inserted"] == report["read"] == 500, (app, report)
            assert 1 <= report["peak_in_use"] <= MAX_SIZE, (app, report)
            assert 1 <= peak <= MAX_SIZE, (app, peak)
            assert 1 <= len(report["server_ids"]) <= MAX_SIZE * 2, (app, report)
            assert await alive_after_close(admin_url, report["server_ids"]) == set(), app
            assert await _count_role(admin_url, role) == 0, app
    finally:
        await _drop_role(admin_url, role)
