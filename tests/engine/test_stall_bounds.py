"""Stalled network (no byte flows, no error comes): the engine's own awaits on a connection
stay bounded — the pre-ping at checkout by connect_timeout and the caller's acquire
deadline, the rollback at checkin by connect_timeout — and a stalled connection is
terminated and retired, so the pool does not count it as used and refills.

Runs on the real servers through an in-process TCP proxy (loopback only).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from poolbridge.errors import PoolTimeout
from poolbridge.testing.servers.proxy import TcpProxy

from .real import Target, target_for

pytestmark = [pytest.mark.asyncio, pytest.mark.server, pytest.mark.timeout(30)]

PORT = {"postgresql": 5432, "mysql": 3306}
ACQUIRE_TIMEOUT = 2.0
CONNECT_TIMEOUT = 1.0


@pytest.fixture(params=("asyncpg", "aiomysql"))
def target(request: pytest.FixtureRequest) -> Target:
    return target_for(request, request.param)


def _opts(url: str) -> dict[str, Any]:
    return {
        "url": url,
        "min_size": 1,
        "max_size": 2,
        "pre_ping": True,
        "acquire_timeout": ACQUIRE_TIMEOUT,
        "connect_timeout": CONNECT_TIMEOUT,
    }


async def test_pre_ping_on_stalled_link_is_bounded(target: Target) -> None:
    """An idle connection whose link stalls: the acquire ends (PoolTimeout, as new
    connections cannot be opened either) within about acquire_timeout, not never; the
    stalled connection is not counted as used; after heal the pool serves again."""
    async with TcpProxy("127.0.0.1", PORT[target.backend]) as proxy:
        pool = await target.open(**_opts(proxy.url_for(target.url)))
        engine = pool.engine
        try:
            async with engine.acquire() as conn:  # not fresh any more: the next one pings
                assert await target.scalar(conn, "SELECT 1") == 1
            assert engine.idle_count == 1
            proxy.stall()
            t0 = time.monotonic()
            with pytest.raises(PoolTimeout):
                await asyncio.wait_for(engine.getconn(), 10)
            elapsed = time.monotonic() - t0
            assert elapsed < 5.0, f"acquire took {elapsed:.2f}s on a stalled link"
            assert pool.stats()["connection.count.used"] == 0
            await proxy.heal()
            conn = await asyncio.wait_for(engine.getconn(), 10)
            try:
                assert await target.scalar(conn, "SELECT 1") == 1
            finally:
                await engine.putconn(conn)
        finally:
            await pool.close(timeout=2)


async def test_pre_ping_stall_then_heal_returns_fresh_connection(target: Target) -> None:
    """The link heals while the caller waits: the stalled connection is dropped after
    connect_timeout and the caller gets a working (new) connection within its deadline."""
    async with TcpProxy("127.0.0.1", PORT[target.backend]) as proxy:
        opts = _opts(proxy.url_for(target.url))
        opts["acquire_timeout"] = 4.0
        pool = await target.open(**opts)
        engine = pool.engine
        try:
            async with engine.acquire() as conn:
                first = engine.server_id_of(conn)
            proxy.stall(CONNECT_TIMEOUT * 1.3)  # heals itself after the ping gave up
            t0 = time.monotonic()
            conn = await asyncio.wait_for(engine.getconn(), 10)
            elapsed = time.monotonic() - t0
            try:
                assert await target.scalar(conn, "SELECT 1") == 1
                assert engine.server_id_of(conn) != first
            finally:
                await engine.putconn(conn)
            assert elapsed < 5.0, f"acquire took {elapsed:.2f}s"
        finally:
            await pool.close(timeout=2)


@pytest.mark.parametrize("reset", ["rollback", "full"])
async def test_checkin_reset_on_stalled_link_is_bounded(target: Target, reset: str) -> None:
    """A connection given back inside a transaction while the link is stalled: the
    rollback (or full reset) at checkin gives up after connect_timeout, the connection is
    terminated, not counted as used, and the pool refills once the link heals."""
    async with TcpProxy("127.0.0.1", PORT[target.backend]) as proxy:
        pool = await target.open(reset=reset, **_opts(proxy.url_for(target.url)))
        engine = pool.engine
        try:
            conn = await engine.getconn()
            stalled_id = engine.server_id_of(conn)
            await target.begin(conn)
            assert await target.scalar(conn, "SELECT 1") == 1
            proxy.stall()
            t0 = time.monotonic()
            await asyncio.wait_for(engine.putconn(conn), 10)
            elapsed = time.monotonic() - t0
            assert elapsed < CONNECT_TIMEOUT + 1.5, f"checkin took {elapsed:.2f}s"
            assert pool.stats()["connection.count.used"] == 0
            assert stalled_id not in engine.server_ids()
            await proxy.heal()
            conn = await asyncio.wait_for(engine.getconn(), 10)
            try:
                assert engine.server_id_of(conn) != stalled_id
                assert await target.scalar(conn, "SELECT 1") == 1
            finally:
                await engine.putconn(conn)
        finally:
            await pool.close(timeout=2)


async def test_block_exit_on_stalled_link_is_bounded(target: Target) -> None:
    """The same through ``async with engine.acquire()``: the block's exit is bounded."""
    async with TcpProxy("127.0.0.1", PORT[target.backend]) as proxy:
        pool = await target.open(**_opts(proxy.url_for(target.url)))
        engine = pool.engine
        try:
            t0 = 0.0

            async def block() -> None:
                nonlocal t0
                async with engine.acquire() as conn:
                    await target.begin(conn)
                    proxy.stall()
                    t0 = time.monotonic()

            await asyncio.wait_for(block(), 10)
            elapsed = time.monotonic() - t0
            assert elapsed < CONNECT_TIMEOUT + 1.5, f"block exit took {elapsed:.2f}s"
            assert pool.stats()["connection.count.used"] == 0
        finally:
            await proxy.heal()
            await pool.close(timeout=2)
