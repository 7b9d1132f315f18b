"""Tortoise through poolbridge authenticates as the configured role, on every path.

The system test server trusts every local connection, which hides a missing password. Here
an embedded PostgreSQL requires scram-sha-256 on TCP for a password role; the server says who
connected (``current_user``), and Tortoise's maintenance path (``_create_db`` /
``db_delete``, a connection without the database) must authenticate too.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterator

import pytest

from poolbridge import PoolConfig, open_pool
from poolbridge.adapters.tortoise import tortoise_config
from poolbridge.testing.admin import in_ci

ROLE, SECRET = "pb_tortoise_scram", "s3cret-Tortoise"  # a throw-away test role


@pytest.fixture(scope="module")
def scram_server() -> Iterator[tuple[str, int]]:
    """(host, port) of an embedded PostgreSQL where TCP logins need a scram password."""
    from poolbridge.testing.servers.embedded import EmbeddedPostgres

    try:
        server = EmbeddedPostgres()
        server.start()
    except Exception as exc:  # pragma: no cover - environment dependent
        if in_ci():  # CI=true: a server that cannot start is a failure, not a skip
            pytest.fail(f"embedded PostgreSQL did not start: {exc}")
        pytest.skip(f"embedded PostgreSQL did not start: {exc}")
    try:
        socket_url = f"postgresql://postgres@/postgres?host={server.socket_dir}&port={server.port}"
        hba = server.pgdata / "pg_hba.conf"
        # local socket: trust (the admin below); TCP: a scram password for everyone
        hba.write_text("local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n")
        _psql(socket_url, f"CREATE ROLE {ROLE} LOGIN CREATEDB PASSWORD '{SECRET}'")
        # Tortoise's maintenance connection names no database: libpq and asyncpg then use
        # the role's own, as with Tortoise alone
        _psql(socket_url, f"CREATE DATABASE {ROLE} OWNER {ROLE}")
        _psql(socket_url, "SELECT pg_reload_conf()")
        yield server.host, server.port
    finally:
        server.close()


def _psql(url: str, sql: str) -> None:
    import asyncio

    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


async def _exists(host: str, port: int, db: str) -> bool:
    import asyncpg

    url = f"postgresql://{ROLE}@{host}:{port}/postgres"
    conn = await asyncpg.connect(url, password=SECRET)
    try:
        return bool(await conn.fetchval("SELECT count(*) FROM pg_database WHERE datname=$1", db))
    finally:
        await conn.close()


@pytest.mark.asyncio
@pytest.mark.server
@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
async def test_queries_and_maintenance_run_as_the_configured_role(
    scram_server: tuple[str, int], driver: str
) -> None:
    from tortoise.context import TortoiseContext

    host, port = scram_server
    url = f"postgresql://{ROLE}@{host}:{port}/postgres"
    # no password: the server refuses (the check below is not trust auth)
    with pytest.raises(Exception, match=r"password|Can't establish connection"):
        await open_pool(PoolConfig(url=url, driver=driver, retry={"attempts": 1},
                                   acquire_timeout=1), adapter="tortoise")  # fmt: skip
    config = PoolConfig(url=url, driver=driver, password=SECRET, name="pb-scram")
    pool = await open_pool(config, adapter="tortoise")
    try:
        with pool.context:
            _, rows = await pool.native.execute_query("SELECT current_user AS u")
        assert dict(rows[0])["u"] == ROLE
    finally:
        await pool.close()
    # Tortoise's maintenance path: CREATE DATABASE / DROP DATABASE on a connection without
    # the database, authenticated with the same password provider
    db = f"pb_scram_{uuid.uuid4().hex[:8]}"
    created = PoolConfig(url=f"postgresql://{ROLE}@{host}:{port}/{db}", driver=driver,
                         password=SECRET, name="pb-scram-db", acquire_timeout=5)  # fmt: skip
    ctx = TortoiseContext()
    apps = {"pbscram": {"models": ["poolbridge.adapters.tortoise.backends"],
                        "default_connection": "default"}}  # fmt: skip
    tconfig = tortoise_config(created, apps=apps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        await ctx.init(config=tconfig, _create_db=True)
    try:
        with ctx:
            _, rows = await ctx.connections.get("default").execute_query(
                "SELECT current_database() AS d, current_user AS u"
            )
        assert dict(rows[0]) == {"d": db, "u": ROLE}
    finally:
        with ctx:  # as Tortoise._drop_databases: close, then drop over the maintenance path
            client = ctx.connections.get("default")
            await client.close()
            await client.db_delete()
        await ctx.close_connections()
    assert not await _exists(host, port, db)
