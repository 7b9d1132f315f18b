"""PBConnectionPool's getconn()/putconn() inline psycopg_pool's own (and the small coroutines
they await: a coroutine frame each per checkout, issue 9). What psycopg_pool does there must
still happen: its request count, its log lines, its timeout message, its reset task, its
closed-pool path, and, with a check function, its retry loop."""

from __future__ import annotations

import hashlib
import inspect
import logging
import uuid

import psycopg_pool
import pytest

from poolbridge import PoolConfig, PoolTimeout, open_pool

#: sha256 prefixes of the psycopg_pool 3.3 methods PBConnectionPool's getconn/putconn inline
INLINED = {
    "getconn": "9ce0f57bc51648f0",
    "putconn": "be880052c5c0a33c",
    "_getconn_with_check_loop": "b0d1637bddca5ef6",  # inlined when there is no check
    "_check_connection": "f27b3e597ffd2379",  # a no-op without a check
    "_maybe_close_connection": "9a69a40c7bab53e3",
    "_putconn": "474d294da7fab1f1",
}


def _name() -> str:
    return f"pbinl_{uuid.uuid4().hex[:8]}"


def test_inlined_psycopg_pool_code_is_the_one_copied() -> None:
    changed = [
        name
        for name, digest in INLINED.items()
        if hashlib.sha256(
            inspect.getsource(getattr(psycopg_pool.AsyncConnectionPool, name)).encode()
        ).hexdigest()[:16]
        != digest
    ]
    assert not changed, (
        f"psycopg_pool changed {changed}: re-read them and re-sync PBConnectionPool.getconn/"
        "putconn (src/poolbridge/drivers/_psycopg_pool.py), then update INLINED"
    )


@pytest.mark.asyncio
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


@pytest.mark.asyncio
@pytest.mark.parametrize("pre_ping", [False, True])
async def test_timeout_cause_is_psycopg_pools_message(pg_url: str, pre_ping: bool) -> None:
    cfg = PoolConfig(url=pg_url, min_size=1, max_size=1, acquire_timeout=0.2,
                     pre_ping=pre_ping, name=_name())  # fmt: skip
    async with open_pool(cfg, adapter="psycopg") as pool, pool.acquire():
        with pytest.raises(PoolTimeout) as info:
            await pool.native.getconn(timeout=0.1)
        cause = info.value.__cause__
        assert isinstance(cause, psycopg_pool.PoolTimeout)
        assert str(cause) == "couldn't get a connection after 0.10 sec"
        assert "acquire_timeout=0.1" in str(info.value)
        assert pool.stats()["connection.pending_requests"] == 0


@pytest.mark.asyncio
async def test_connection_put_back_after_close_is_closed(pg_url: str) -> None:
    cfg = PoolConfig(url=pg_url, min_size=1, max_size=1, name=_name())
    async with open_pool(cfg, adapter="psycopg") as pool:
        native = pool.native
        conn = await native.getconn()
        await psycopg_pool.AsyncConnectionPool.close(native)  # psycopg_pool's own close
        await native.putconn(conn)
        assert conn.closed
        assert pool.stats()["connection.count.used"] == 0
