"""PBConnectionPool is psycopg_pool with poolbridge's surface added through its extension
points: what psycopg_pool does at checkout and checkin (its request count, its log lines,
its timeout exception, its rollback of a dirty connection with its WARNING logs, its
closed-pool path) still happens, and the AsyncConnectionPool arguments a caller gives the
class are honoured or refused by name. Real server; the stalled link comes from
poolbridge's TCP proxy."""

from __future__ import annotations

import asyncio
import logging
import uuid
from time import monotonic
from typing import Any

import psycopg
import psycopg_pool
import pytest

from poolbridge import (
    ConnectionEvent,
    Hooks,
    PoolConfig,
    PoolTimeout,
    UnsupportedOptionError,
    errors,
    open_pool,
)
from poolbridge.drivers.psycopg.pool import PBConnectionPool, PsycopgHolder
from poolbridge.testing.servers.proxy import TcpProxy

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]

IDLE = psycopg.pq.TransactionStatus.IDLE


def _name() -> str:
    return f"pbstk_{uuid.uuid4().hex[:8]}"


def _pool_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "psycopg.pool" and r.levelno == logging.WARNING]  # fmt: skip


@pytest.mark.parametrize("pre_ping", [False, True])
async def test_checkout_counts_and_logs_like_psycopg_pool(
    pg_url: str, pre_ping: bool, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = PoolConfig(url=pg_url, min_size=1, max_size=1, pre_ping=pre_ping, name=_name())
    async with open_pool(cfg, adapter="psycopg") as pool:
        native = pool.native
        before = native.get_stats().get("requests_num", 0)
        with caplog.at_level(logging.INFO, logger="psycopg.pool"):
            async with pool.acquire() as conn:
                await conn.execute("SELECT 1")
                await conn.commit()
            async with native.connection() as conn:
                await conn.execute("SELECT 1")
        assert native.get_stats()["requests_num"] == before + 2
        lines = [r.getMessage() for r in caplog.records if r.name == "psycopg.pool"]
        cycle = [
            f"connection requested from {cfg.name!r}",
            f"connection given by {cfg.name!r}",
            f"returning connection to {cfg.name!r}",
        ]
        assert [m for m in lines if m in cycle] == cycle * 2
        assert pool.stats()["connection.wait_time"]["count"] == 2
        assert pool.stats()["connection.use_time"]["count"] == 2


@pytest.mark.parametrize("pre_ping", [False, True])
async def test_timeout_cause_is_psycopg_pools_own_exception(pg_url: str, pre_ping: bool) -> None:
    cfg = PoolConfig(url=pg_url, min_size=1, max_size=1, acquire_timeout=0.2,
                     pre_ping=pre_ping, name=_name())  # fmt: skip
    async with open_pool(cfg, adapter="psycopg") as pool, pool.acquire():
        with pytest.raises(PoolTimeout) as info:
            await pool.native.getconn(timeout=0.1)
        assert isinstance(info.value, psycopg_pool.PoolTimeout)
        cause = info.value.__cause__
        assert type(cause) is psycopg_pool.PoolTimeout
        assert str(cause) == "couldn't get a connection after 0.10 sec"
        assert "acquire_timeout=0.1" in str(info.value)
        assert pool.stats()["connection.pending_requests"] == 0


async def test_connection_put_back_after_close_is_closed(pg_url: str) -> None:
    cfg = PoolConfig(url=pg_url, min_size=1, max_size=1, name=_name())
    async with open_pool(cfg, adapter="psycopg") as pool:
        native = pool.native
        conn = await native.getconn()
        await psycopg_pool.AsyncConnectionPool.close(native)  # psycopg_pool's own close
        await native.putconn(conn)
        assert conn.closed
        assert pool.stats()["connection.count.used"] == 0


async def test_dirty_putconn_is_rolled_back_by_psycopg_pool_with_its_warning(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = PoolConfig(url=pg_url, min_size=1, max_size=1, name=_name())
    async with open_pool(cfg, adapter="psycopg") as pool:
        native = pool.native
        with caplog.at_level(logging.WARNING, logger="psycopg.pool"):
            conn = await native.getconn()
            pid = conn.info.backend_pid
            await conn.execute("SELECT 1")
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
            await native.putconn(conn)
        async with native.connection() as conn:
            assert conn.info.backend_pid == pid and conn.info.transaction_status == IDLE
    assert [m for m in _pool_warnings(caplog) if m.startswith("rolling back returned connection")]


async def test_handle_release_rolls_back_by_contract_without_a_warning(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = PoolConfig(url=pg_url, min_size=1, max_size=1, name=_name())
    async with open_pool(cfg, adapter="psycopg") as pool:
        with caplog.at_level(logging.WARNING, logger="psycopg.pool"):
            async with pool.acquire() as conn:
                pid = conn.info.backend_pid
                await conn.execute("SELECT 1")
            async with pool.acquire() as conn:
                assert conn.info.backend_pid == pid and conn.info.transaction_status == IDLE
    assert _pool_warnings(caplog) == []


async def test_async_checkin_hook_gets_a_clean_connection_and_commits_only_its_own(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    table = f"pbstk_t_{uuid.uuid4().hex[:8]}"
    seen: list[Any] = []

    async def on_checkin(ev: ConnectionEvent) -> None:
        seen.append(ev.connection.info.transaction_status)
        await ev.connection.execute("SET application_name = 'checked_in'")

    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as admin:
        await admin.execute(f"CREATE TABLE {table} (x int)")
        try:
            cfg = PoolConfig(url=pg_url, min_size=1, max_size=1, name=_name())
            hooks = Hooks(on_checkin=on_checkin)
            async with open_pool(cfg, adapter="psycopg", hooks=hooks) as pool:
                async with pool.acquire() as conn:
                    await conn.execute(f"INSERT INTO {table} VALUES (1)")  # never committed
                async with pool.acquire() as conn:
                    cur = await conn.execute("SELECT current_setting('application_name')")
                    assert (await cur.fetchone()) == ("checked_in",)
                    await conn.rollback()
            cur = await admin.execute(f"SELECT count(*) FROM {table}")
            assert (await cur.fetchone()) == (0,)  # the caller's transaction rolled back
        finally:
            await admin.execute(f"DROP TABLE IF EXISTS {table}")
    assert seen[0] == IDLE  # the hook saw the connection after the rollback


async def test_stalled_rollback_at_checkin_is_bounded_and_discarded(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """psycopg_pool's rollback at checkin, bounded by connect_timeout (unbounded it would
    hold the release until the link heals); the handle's release is bounded the same way
    (tests/psycopg/test_psycopg_release.py)."""
    async with TcpProxy("127.0.0.1", 5432) as proxy:
        cfg = PoolConfig(url=proxy.url_for(pg_url), min_size=1, max_size=1, acquire_timeout=8,
                         connect_timeout=0.5, name=_name())  # fmt: skip
        async with open_pool(cfg, adapter="psycopg") as pool:
            with caplog.at_level(logging.WARNING, logger="psycopg.pool"):
                conn = await pool.native.getconn()
                pid = conn.info.backend_pid
                await conn.execute("SELECT 1")
                proxy.stall()
                t0 = monotonic()
                await pool.native.putconn(conn)  # psycopg_pool's own rollback, bounded
                elapsed = monotonic() - t0
            assert 0.45 <= elapsed < 3.0, elapsed
            warnings = _pool_warnings(caplog)
            assert any(m.startswith("rolling back returned connection") for m in warnings)
            assert any(m.startswith("rollback failed") for m in warnings), warnings
            await proxy.heal()
            async with pool.acquire() as conn:
                assert conn.info.backend_pid != pid  # discarded and replaced
            st = pool.stats()
            assert st["connection.closed"] >= 1
            assert st["connection.count.used"] == 0


async def test_closed_counts_follow_every_close_psycopg_pool_makes(pg_url: str) -> None:
    closes: list[Any] = []
    hooks = Hooks(on_close=lambda ev: closes.append(ev.connection_id))
    cfg = PoolConfig(url=pg_url, min_size=2, max_size=2, name=_name())
    async with open_pool(cfg, adapter="psycopg", hooks=hooks) as pool:
        native = pool.native
        conn = await native.getconn()
        await native.drain()  # closes the idle one now, the checked-out one at its return
        await native.putconn(conn)
        for _ in range(100):
            st = pool.stats()
            if st["connection.closed"] >= 2 and st["connection.created"] >= 4:
                break
            await asyncio.sleep(0.02)
        st = pool.stats()
        assert st["connection.closed"] == 2 and len(closes) == 2
        assert st["connection.created"] == 4
    st = pool.stats()
    assert st["connection.closed"] == st["connection.created"] == 4


def _holder(pg_url: str, **fields: Any) -> PsycopgHolder:
    return PsycopgHolder(PoolConfig(url=pg_url, name=_name(), **fields), adapter="psycopg",
                         hooks=None)  # fmt: skip


async def test_open_true_is_refused_by_name(pg_url: str) -> None:
    with pytest.raises(UnsupportedOptionError, match="open"):
        PBConnectionPool(pg_url, poolbridge=_holder(pg_url), open=True)


async def test_callers_configure_check_reset_and_connection_class_are_honoured(
    pg_url: str,
) -> None:
    calls: list[str] = []

    class MyConnection(psycopg.AsyncConnection[Any]):
        pass

    async def configure(conn: psycopg.AsyncConnection[Any]) -> None:
        calls.append("configure")
        await conn.execute("SET search_path = pbstk_schema, public")
        await conn.commit()

    async def check(conn: psycopg.AsyncConnection[Any]) -> None:
        calls.append("check")

    async def reset(conn: psycopg.AsyncConnection[Any]) -> None:
        calls.append("reset")

    connects: list[Any] = []
    holder = PsycopgHolder(
        PoolConfig(url=pg_url, name=_name(), pre_ping=True),
        adapter="psycopg",
        hooks=Hooks(on_connect=lambda ev: connects.append(ev.connection_id)),
    )
    pool = PBConnectionPool(pg_url, poolbridge=holder, open=False, min_size=1, max_size=1,
                            configure=configure, check=check, reset=reset,
                            connection_class=MyConnection, name="mine")  # fmt: skip
    async with pool:
        assert pool.name == "mine"
        async with pool.connection() as conn:
            assert isinstance(conn, MyConnection)
            cur = await conn.execute("SHOW search_path")
            assert (await cur.fetchone()) == ("pbstk_schema, public",)
            pid = conn.info.backend_pid
        for _ in range(100):  # psycopg_pool runs reset= in a worker task
            if "reset" in calls:
                break
            await asyncio.sleep(0.02)
        assert calls == ["configure", "check", "reset"]
        assert connects == [pid]
        assert holder.recorder.snapshot()["connection.created"] == 1


@pytest.mark.parametrize("pre_ping", [False, True])
async def test_check_given_to_the_class_is_run(pg_url: str, pre_ping: bool) -> None:
    """Tortoise passes check=AsyncConnectionPool.check_connection: it runs (once, bounded,
    when pre_ping asks for the same check), so a killed idle connection is not handed out."""
    holder = _holder(pg_url, pre_ping=pre_ping)
    pool = PBConnectionPool(pg_url, poolbridge=holder, min_size=1, max_size=1,
                            check=psycopg_pool.AsyncConnectionPool.check_connection)  # fmt: skip
    async with pool:
        async with pool.connection() as conn:
            pid = conn.info.backend_pid
        async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as admin:
            await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        await asyncio.sleep(0.1)
        async with pool.connection() as conn:
            assert conn.info.backend_pid != pid
            await conn.execute("SELECT 1")
        assert holder.recorder.snapshot()["connection.closed"] == 1


async def test_warm_up_and_reopen_raise_poolbridges_types(pg_url: str) -> None:
    unreachable = "postgresql://root@127.0.0.1:1/test"
    holder = _holder(unreachable, connect_timeout=0.5)
    pool = PBConnectionPool(unreachable, poolbridge=holder, min_size=1, max_size=1)
    with pytest.raises(errors.ConnectError) as info:
        await pool.open(wait=True, timeout=0.5)
    assert isinstance(info.value, psycopg_pool.PoolTimeout)
    with pytest.raises(errors.PoolClosed) as closed:
        await pool.open()  # psycopg_pool cannot reopen a closed pool
    assert isinstance(closed.value, psycopg_pool.PoolClosed)


async def test_connection_closed_by_its_user_is_counted_once(pg_url: str) -> None:
    cfg = PoolConfig(url=pg_url, min_size=1, max_size=1, name=_name())
    async with open_pool(cfg, adapter="psycopg") as pool:
        native = pool.native
        conn = await native.getconn()
        await conn.close()
        await native.putconn(conn)  # psycopg_pool discards it and opens a replacement
        async with native.connection() as conn2:
            assert conn2 is not conn
        st = pool.stats()
        assert st["connection.count.used"] == 0
        assert st["connection.closed"] == 1 and st["connection.created"] == 2
