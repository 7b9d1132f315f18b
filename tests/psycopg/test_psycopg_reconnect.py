"""What the psycopg adapter's ``retry`` row says, on the real server: after the pool is
open, a lost connection is reconnected by psycopg_pool in the background with its own
backoff until ``reconnect_timeout`` (= max(acquire_timeout, connect_timeout)), not within
``retry.attempts``; then it gives that connection up until a caller needs one. (At open,
``retry.attempts`` per connection bounds the attempts: tests/lifecycle/test_connect_error.py.)

The server becomes unreachable through a :class:`TcpProxy` that refuses new connections
and resets the live ones; every failed attempt is counted in ``connection.errors``."""

from __future__ import annotations

import asyncio
import uuid
from time import monotonic
from urllib.parse import urlsplit

import psycopg
import pytest

from poolbridge import PoolConfig, RetryPolicy, open_pool
from poolbridge.testing.servers.proxy import TcpProxy

pytestmark = pytest.mark.asyncio


async def test_lost_connection_is_retried_until_reconnect_timeout_not_retry_attempts(
    pg_url: str,
) -> None:
    u = urlsplit(pg_url)
    async with TcpProxy(u.hostname or "127.0.0.1", u.port or 5432) as proxy:
        cfg = PoolConfig(
            url=proxy.url_for(pg_url),
            min_size=1,
            max_size=1,
            acquire_timeout=3.0,
            connect_timeout=2.0,
            retry=RetryPolicy(attempts=1),
            name=f"pbpsy_{uuid.uuid4().hex[:8]}",
        )
        async with open_pool(cfg, adapter="psycopg") as pool:
            assert pool.native.reconnect_timeout == 3.0
            await proxy.refuse()
            assert proxy.drop() == 1
            with pytest.raises(psycopg.OperationalError):
                async with pool.acquire() as conn:  # the idle connection is gone
                    await conn.execute("SELECT 1")
            # psycopg_pool discards it and reconnects in the background: watch the failed
            # attempts until none came for 2.5 s (longer than its backoff before giving up)
            seen: list[tuple[float, int]] = [(monotonic(), pool.stats()["connection.errors"])]
            start = seen[0][0]
            while monotonic() - seen[-1][0] < 2.5 and monotonic() - start < 30:
                await asyncio.sleep(0.05)
                errors = pool.stats()["connection.errors"]
                if errors != seen[-1][1]:
                    seen.append((monotonic(), errors))
            attempts = seen[-1][1] - seen[0][1]
            first, last = seen[1][0] if len(seen) > 1 else start, seen[-1][0]
            # more than retry.attempts (1), spaced by psycopg_pool's backoff (1 s, doubling)
            assert attempts >= 2, seen
            assert last - first >= 0.8, seen
            # and it gave up around reconnect_timeout (3 s): nothing came for 2.5 s
            assert last - first <= 3.0 + 2.0, seen
            await proxy.heal()
            # a caller makes psycopg_pool open a connection again
            async with pool.acquire() as conn:
                assert await (await conn.execute("SELECT 1")).fetchone() == (1,)
