"""Failover on a real primary + streaming standby: the primary is killed under load and
the standby promoted; the pool must serve read-write queries from the new primary within
5 s, with no caller waiting past its acquire_timeout and only connection-class errors in
between. Promotion is destructive: every case gets a fresh pair. This is the fast case of
``make test`` (20 tasks); every stack under 200 tasks is the ``failover`` conformance row,
run by tests/ha/test_failover_rows.py under ``make soak``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from poolbridge import PoolConfig, open_pool
from poolbridge.drivers.base import raw_scalar
from poolbridge.pool.retrying import is_connection_error
from poolbridge.testing.servers.replica import ReplicatedPostgres

pytestmark = [pytest.mark.server]

RECOVERY_BOUND = 5.0
ACQUIRE_TIMEOUT = 3.0
#: a write only a primary accepts, and the port that served it
_WRITE = "SELECT txid_current()::text || ':' || inet_server_port()"


@pytest.fixture
def fresh_pair() -> Iterator[ReplicatedPostgres]:
    pg = ReplicatedPostgres()
    try:
        pg.start()
        yield pg
    finally:
        pg.close()


@dataclass
class Load:
    ok: list[tuple[float, int]] = field(default_factory=list)  # (time, server port)
    errors: list[BaseException] = field(default_factory=list)
    longest: float = 0.0


async def _worker(pool: object, load: Load, stop: asyncio.Event) -> None:
    while not stop.is_set():
        start = time.monotonic()
        try:
            async with asyncio.timeout(ACQUIRE_TIMEOUT + 2):  # a hang fails the test below
                async with pool.acquire() as conn:  # type: ignore[attr-defined]
                    text = str(await raw_scalar(conn, _WRITE))
            load.ok.append((time.monotonic(), int(text.rsplit(":", 1)[1])))
        except TimeoutError as exc:
            load.errors.append(exc)
        except Exception as exc:
            load.errors.append(exc)
            await asyncio.sleep(0.02)
        load.longest = max(load.longest, time.monotonic() - start)
        await asyncio.sleep(0.005)


async def _failover(pair: ReplicatedPostgres, adapter: str, tasks: int) -> float:
    config = PoolConfig(
        url=pair.url(("primary", "standby")), target_session_attrs="read-write",
        connect_timeout=1, acquire_timeout=ACQUIRE_TIMEOUT, min_size=2, max_size=5,
        host_recheck_interval=None if adapter == "psycopg" else 30.0,
    )  # fmt: skip
    load, stop = Load(), asyncio.Event()
    async with open_pool(config, adapter=adapter) as pool:
        workers = [asyncio.create_task(_worker(pool, load, stop)) for _ in range(tasks)]
        try:
            await asyncio.sleep(0.5)
            assert load.ok and all(port == pair.primary.port for _, port in load.ok)
            killed = time.monotonic()
            await asyncio.to_thread(pair.kill_primary)
            await asyncio.to_thread(pair.promote)
            while time.monotonic() - killed < RECOVERY_BOUND + 1:
                if any(t > killed and port == pair.standby.port for t, port in load.ok):
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.3)  # the pool keeps serving after the first success
        finally:
            stop.set()
            await asyncio.gather(*workers)
    served = [t for t, port in load.ok if t > killed and port == pair.standby.port]
    assert served, f"no write reached the new primary; errors: {load.errors[-3:]!r}"
    recovered = served[0] - killed
    assert recovered < RECOVERY_BOUND, f"recovered after {recovered:.2f}s"
    assert load.longest < ACQUIRE_TIMEOUT + 1, f"a caller waited {load.longest:.2f}s"
    odd = [e for e in load.errors if not is_connection_error(e)]
    assert not odd, f"errors that are not connection-class: {odd[:3]!r}"
    return recovered


@pytest.mark.asyncio
async def test_failover_asyncpg_recovers_to_the_new_primary(
    fresh_pair: ReplicatedPostgres,
) -> None:
    recovered = await _failover(fresh_pair, "asyncpg", tasks=20)
    print(f"asyncpg failover: read-write again {recovered:.2f}s after the kill")
