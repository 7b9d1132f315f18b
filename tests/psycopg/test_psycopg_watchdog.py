"""The client-side statement_timeout backstop of the psycopg_pool stacks (psycopg, Tortoise's
psycopg client and peewee-async's Psycopg3Database share PBConnectionPool), against the real
server — through the loopback TCP proxy where the network has to stall."""

from __future__ import annotations

import asyncio
import uuid
from time import monotonic

import psycopg
import pytest

from poolbridge import PoolConfig, open_pool
from poolbridge.pool.retrying import is_connection_error
from poolbridge.pool.watchdog import backstop
from poolbridge.testing.servers.proxy import TcpProxy

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]


def _name() -> str:
    return f"pbwd_{uuid.uuid4().hex[:8]}"


async def test_no_statement_timeout_no_watched_connection_class(pg_url: str) -> None:
    cfg = PoolConfig(url=pg_url, min_size=0, max_size=1, name=_name())
    async with open_pool(cfg, adapter="psycopg") as pool:
        # the pool's own connection class (it counts connects and closes) sits directly
        # on psycopg's: no statement watchdog wraps wait() without a statement_timeout
        assert pool.native.connection_class.__mro__[1] is psycopg.AsyncConnection
        async with pool.native.connection() as conn:
            assert type(conn) is pool.native.connection_class
            assert "Watched" not in type(conn).__name__


async def test_stalled_statement_is_cut_and_its_connection_never_reused(pg_url: str) -> None:
    async with TcpProxy("127.0.0.1", 5432) as proxy:
        cfg = PoolConfig(
            url=proxy.url_for(pg_url), min_size=1, max_size=1, statement_timeout=0.3,
            pre_ping=False, acquire_timeout=8.0, name=_name(),
        )  # fmt: skip
        async with open_pool(cfg, adapter="psycopg") as pool:
            native = pool.native
            async with native.connection() as conn:
                pid = conn.info.backend_pid
                assert isinstance(conn, psycopg.AsyncConnection)
            proxy.stall()
            t0 = monotonic()
            cut = "statement_timeout backstop"
            with pytest.raises(psycopg.OperationalError, match=cut) as info:
                async with native.connection() as conn:
                    assert conn.info.backend_pid == pid
                    await conn.execute("SELECT 1")
            elapsed = monotonic() - t0
            limit = backstop(0.3)
            assert limit is not None
            # cut by the watchdog, not by the link healing: generous bound for a busy machine
            assert limit - 0.05 <= elapsed < limit + 4.0, elapsed
            assert is_connection_error(info.value)
            await proxy.heal()
            async with native.connection() as conn:
                assert conn.info.backend_pid != pid  # the cut connection was discarded
                cur = await conn.execute("SELECT 1")
                assert await cur.fetchone() == (1,)


async def test_server_statement_timeout_wins_and_connection_survives(pg_url: str) -> None:
    cfg = PoolConfig(url=pg_url, min_size=1, max_size=1, statement_timeout=0.3, name=_name())
    async with open_pool(cfg, adapter="psycopg") as pool:
        async with pool.native.connection() as conn:
            pid = conn.info.backend_pid
            with pytest.raises(psycopg.errors.QueryCanceled):
                await conn.execute("SELECT pg_sleep(3)")
        async with pool.native.connection() as conn:
            assert conn.info.backend_pid == pid  # not cut: the server answered in time
            cur = await conn.execute("SELECT 1")
            assert await cur.fetchone() == (1,)


async def test_notifies_may_wait_longer_than_the_backstop(pg_url: str) -> None:
    cfg = PoolConfig(url=pg_url, min_size=1, max_size=1, statement_timeout=0.2, name=_name())
    limit = backstop(0.2)
    assert limit is not None
    channel = f"pbwd_{uuid.uuid4().hex[:8]}"

    async def notify_later() -> None:
        await asyncio.sleep(limit + 0.8)  # the listener waits past the backstop
        async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as other:
            await other.execute(f"NOTIFY {channel}, 'hello'")

    async with open_pool(cfg, adapter="psycopg") as pool, pool.native.connection() as conn:
        await conn.execute(f"LISTEN {channel}")
        await conn.commit()
        task = asyncio.ensure_future(notify_later())
        got = [n.payload async for n in conn.notifies(timeout=20, stop_after=1)]
        await task
        assert got == ["hello"]
        cur = await conn.execute("SELECT 1")  # still connected
        assert await cur.fetchone() == (1,)
        await conn.execute(f"UNLISTEN {channel}")
        await conn.commit()
