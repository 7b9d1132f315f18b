"""The tools the fault tests stand on: the embedded server, the TCP proxy, pgbouncer."""

from __future__ import annotations

import asyncio
import os

import pytest

from poolbridge.testing.servers.embedded import EmbeddedPostgres
from poolbridge.testing.servers.pgbouncer import PgBouncer, pgbouncer_binary
from poolbridge.testing.servers.proxy import TcpProxy

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.mark.asyncio
async def test_embedded_server_lifecycle() -> None:
    import asyncpg
    import psycopg

    async with EmbeddedPostgres() as pg:
        assert pg.url.startswith(f"postgresql://postgres@127.0.0.1:{pg.port}/")
        conn = await asyncpg.connect(pg.url)
        assert await conn.fetchval("SHOW port") == str(pg.port)
        await pg.astop()
        assert not pg.running
        with pytest.raises(OSError):
            await asyncpg.connect(pg.url, timeout=2)
        await pg.astart()
        async with await psycopg.AsyncConnection.connect(pg.url) as pconn:
            cur = await pconn.execute("SELECT 1")
            assert await cur.fetchone() == (1,)
        old = await asyncpg.connect(pg.url)
        await pg.arestart()
        assert old.is_closed() or not await _alive(old)
        await conn.close()
        base = pg.basedir
        assert base is not None and base.exists()
    assert not base.exists(), "the temporary directory was not removed"


async def _alive(conn: object) -> bool:
    try:
        await conn.fetchval("SELECT 1")  # type: ignore[attr-defined]
    except Exception:
        return False
    return True


@pytest.mark.asyncio
@pytest.mark.server
async def test_proxy_controls(pg_url: str) -> None:
    import asyncpg

    with pytest.raises(ValueError):
        TcpProxy("10.0.0.1", 5432)
    async with TcpProxy("127.0.0.1", 5432) as proxy:
        url = proxy.url_for(pg_url)
        assert f":{proxy.port}/" in url
        conn = await asyncpg.connect(url)
        assert await conn.fetchval("SELECT 1") == 1
        assert proxy.live_connections == 1

        proxy.stall()
        with pytest.raises(TimeoutError):
            await conn.fetchval("SELECT 2", timeout=0.5)
        await proxy.heal()
        conn2 = await asyncpg.connect(url)
        assert await conn2.fetchval("SELECT 3") == 3

        assert proxy.drop() == proxy.dropped_connections >= 2
        with pytest.raises(Exception):  # noqa: B017 - whatever the driver calls a reset
            await conn2.fetchval("SELECT 4", timeout=2)
        assert proxy.live_connections == 0

        await proxy.refuse(0.5)
        with pytest.raises(ConnectionRefusedError):
            await asyncpg.connect(url, timeout=2)
        await asyncio.sleep(0.8)  # refuse(seconds) heals itself
        conn3 = await asyncpg.connect(url)
        assert await conn3.fetchval("SELECT 5") == 5
        await conn3.close()


@pytest.mark.asyncio
@pytest.mark.server
async def test_proxy_counts_round_trips(pg_url: str, mysql_url: str) -> None:
    """One request/response exchange is one round trip, however many protocol messages it
    carries (asyncpg sends Parse/Bind/Execute/Sync in one write); a second statement, or a
    transaction's BEGIN and ROLLBACK, are more."""
    from urllib.parse import urlsplit

    import aiomysql
    import asyncpg

    pg, my = urlsplit(pg_url), urlsplit(mysql_url)
    async with TcpProxy("127.0.0.1", pg.port or 5432) as proxy:
        conn = await asyncpg.connect(proxy.url_for(pg_url), statement_cache_size=0)
        try:
            await conn.execute("SELECT 1")  # simple query protocol: one exchange
            before = proxy.round_trips
            for _ in range(5):
                await conn.execute("SELECT 1")
            assert proxy.round_trips - before == 5
            before = proxy.round_trips
            async with conn.transaction():  # BEGIN, the query, COMMIT
                await conn.execute("SELECT 1")
            assert proxy.round_trips - before == 3
        finally:
            await conn.close()
    async with TcpProxy("127.0.0.1", my.port or 3306) as proxy:
        mconn = await aiomysql.connect(
            host="127.0.0.1",
            port=proxy.port,
            user=my.username or "root",
            password=my.password or "",
            db=my.path.lstrip("/") or "test",
        )
        try:
            async with mconn.cursor() as cur:
                before = proxy.round_trips
                for _ in range(4):
                    await cur.execute("SELECT 1")
                    await cur.fetchone()
                await mconn.rollback()
            assert proxy.round_trips - before == 5
        finally:
            mconn.close()


@pytest.mark.asyncio
@pytest.mark.server
async def test_pgbouncer_runs_and_counts(pg_url: str) -> None:
    import asyncpg

    if pgbouncer_binary() is None:
        if IN_CI:
            pytest.fail("pgbouncer is not installed (CI=true)")
        pytest.skip("pgbouncer is not installed")
    async with PgBouncer(upstream_port=5432, default_pool_size=2) as bouncer:
        assert "pool_mode = transaction" in bouncer.ini()
        if bouncer.version is not None and bouncer.version >= (1, 21):
            assert "max_prepared_statements = 0" in bouncer.ini()
        else:
            assert "max_prepared_statements" not in bouncer.ini()
        conns = [
            await asyncpg.connect(bouncer.url_for(pg_url), statement_cache_size=0) for _ in range(3)
        ]
        await asyncio.gather(*(c.fetchval("SELECT pg_sleep(0.2)") for c in conns))
        assert await bouncer.client_count(database="test") == 3
        assert 1 <= await bouncer.server_count(database="test") <= 2
        for c in conns:
            await c.close()
        await asyncio.sleep(0.1)
        assert await bouncer.client_count(database="test") == 0


def test_pgbouncer_ini_pins_prepared_statements_off_where_supported(tmp_path: object) -> None:
    from pathlib import Path

    bouncer = PgBouncer(default_pool_size=3, ignore_startup_parameters=("extra_float_digits",))
    bouncer.dir = Path(str(tmp_path))
    bouncer.version = (1, 23)
    ini = bouncer.ini()
    assert "max_prepared_statements = 0" in ini
    assert "pool_mode = transaction" in ini
    assert "listen_addr = 127.0.0.1" in ini
    assert "unix_socket_dir = \n" in ini
    bouncer.version = (1, 18)  # Debian 12: the option does not exist there
    assert "max_prepared_statements" not in bouncer.ini()
    with pytest.raises(ValueError):
        PgBouncer(upstream_host="192.0.2.1")
