"""Every example in examples/ runs as a user would run it (a subprocess, real servers) and
prints what it promises. Tables and migration records get unique names and are dropped."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
BIN = Path(sys.executable).parent


def run(args: list[str], *, cwd: Path = ROOT, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("POOLBRIDGE_")}
    r = subprocess.run(
        args, cwd=cwd, env={**clean, **env}, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, f"{args} exited {r.returncode}:\n{r.stdout}\n{r.stderr[-3000:]}"
    return r.stdout


def example(name: str, **env: str) -> str:
    return run([sys.executable, str(EXAMPLES / name)], **env)


async def pg_scalar(url: str, sql: str) -> object:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


@pytest.mark.parametrize("backend", ["postgresql", "mysql"])
@pytest.mark.parametrize("orm", ["sqlalchemy", "tortoise", "peewee_async"])
def test_minimal_orm(orm: str, backend: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("pg_url" if backend == "postgresql" else "mysql_url")
    out = example(f"minimal_{orm}.py", DATABASE_URL=url)
    if orm == "sqlalchemy":
        assert "engine.connect: 1" in out and "AsyncSession: 2" in out
        assert "open connections: 2" in out  # min_size=2, opened by warm_up()
    else:
        assert "notes: 10" in out
    if orm == "tortoise":
        assert "max connections: 4" in out


def test_minimal_asyncpg(pg_url: str) -> None:
    out = example("minimal_asyncpg.py", DATABASE_URL=pg_url)
    assert "SELECT 1 -> 1" in out
    assert "PoolTimeout: pool 'default' (asyncpg) timed out after acquire_timeout=1.0s" in out
    assert "timeouts: 1" in out


def test_minimal_psycopg(pg_url: str) -> None:
    out = example("minimal_psycopg.py", DATABASE_URL=pg_url)
    assert "application_name: minimal_psycopg" in out
    assert "idle connections: 2" in out


def test_multi_pool(pg_url: str) -> None:
    out = example("multi_pool/app.py", PRIMARY_URL=pg_url, REPLICA_URL=pg_url)
    assert "primary: max_size=4; replica: max_size=2" in out
    assert "replica reads: 2" in out
    assert "replica refuses writes: ReadOnlySQLTransactionError" in out


def test_prometheus(pg_url: str) -> None:
    out = example("prometheus.py", DATABASE_URL=pg_url)
    assert 'poolbridge_connection_count{adapter="asyncpg",pool="orders",state="used"} 1.0' in out
    assert 'poolbridge_connection_max{adapter="asyncpg",pool="orders"} 4.0' in out


def test_pgbouncer(pg_url: str) -> None:
    from poolbridge.testing.servers.pgbouncer import PgBouncer, pgbouncer_binary

    if pgbouncer_binary() is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("pgbouncer is not installed (make pgbouncer)")
        pytest.skip("pgbouncer is not installed (make pgbouncer)")
    with PgBouncer(upstream_port=5432) as bouncer:
        out = example("pgbouncer.py", DATABASE_URL=bouncer.url_for(pg_url))
    assert "asyncpg: 200 parameterized queries through pgbouncer: ok" in out
    assert "psycopg: 200 parameterized queries through pgbouncer: ok" in out


@pytest.mark.asyncio
async def test_alembic_env_reads_poolbridge_config(pg_url: str, tmp_path: Path) -> None:
    pytest.importorskip("alembic")
    work = tmp_path / "alembic"
    shutil.copytree(EXAMPLES / "migrations" / "alembic", work)
    shutil.copy(EXAMPLES / "migrations" / "poolbridge.toml", tmp_path / "poolbridge.toml")
    suffix = uuid.uuid4().hex[:8]
    env = {"DATABASE_URL": pg_url, "EXAMPLE_TABLE": f"pb_alembic_{suffix}",
           "ALEMBIC_VERSION_TABLE": f"pb_alembic_version_{suffix}"}  # fmt: skip
    alembic = [str(BIN / "alembic"), "-c", "alembic.ini"]
    try:
        run([*alembic, "upgrade", "head"], cwd=work, **env)
        assert await pg_scalar(pg_url, f"SELECT to_regclass('pb_alembic_{suffix}')::text")
        assert await pg_scalar(pg_url, f"SELECT version_num FROM pb_alembic_version_{suffix}") \
            == "0001"  # fmt: skip
        run([*alembic, "downgrade", "base"], cwd=work, **env)
        assert await pg_scalar(pg_url, f"SELECT to_regclass('pb_alembic_{suffix}')") is None
    finally:
        await pg_scalar(pg_url, f"DROP TABLE IF EXISTS pb_alembic_{suffix}")
        await pg_scalar(pg_url, f"DROP TABLE IF EXISTS pb_alembic_version_{suffix}")


@pytest.mark.asyncio
async def test_tortoise_migrations_read_tortoise_config(pg_url: str, tmp_path: Path) -> None:
    work = tmp_path / "tortoise"
    shutil.copytree(EXAMPLES / "migrations" / "tortoise", work)
    shutil.copy(EXAMPLES / "migrations" / "poolbridge.toml", tmp_path / "poolbridge.toml")
    suffix = uuid.uuid4().hex[:8]
    table, app = f"pb_tmig_{suffix}", f"notes_{suffix}"
    env = {"DATABASE_URL": pg_url, "EXAMPLE_TABLE": table, "EXAMPLE_APP": app}
    tortoise = [str(BIN / "tortoise"), "-c", "settings.TORTOISE_ORM"]
    try:
        run([*tortoise, "init"], cwd=work, **env)
        assert "0001_initial" in run([*tortoise, "makemigrations"], cwd=work, **env)
        assert "OK" in run([*tortoise, "migrate"], cwd=work, **env)
        assert await pg_scalar(pg_url, f"SELECT to_regclass('{table}')::text") == table
        applied = await pg_scalar(
            pg_url, f"SELECT count(*) FROM tortoise_migrations WHERE app = '{app}'"
        )
        assert applied == 1
    finally:
        await pg_scalar(pg_url, f"DROP TABLE IF EXISTS {table}")
        await pg_scalar(
            pg_url,
            "DO $$ BEGIN IF to_regclass('tortoise_migrations') IS NOT NULL THEN "
            f"DELETE FROM tortoise_migrations WHERE app = '{app}'; END IF; END $$",
        )
