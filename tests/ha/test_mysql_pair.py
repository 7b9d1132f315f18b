"""Several hosts on the MySQL drivers against a MariaDB primary + GTID replica of the test's
own (system ``mariadbd`` binary, own data directories and loopback ports): placement by
``@@read_only``, fallback when the replica is down, and a failover (kill the primary,
promote the replica) as the module's last, destructive case."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest

from poolbridge import PoolConfig, open_pool
from poolbridge.drivers.base import raw_scalar
from poolbridge.pool.retrying import is_connection_error
from poolbridge.testing.servers.replica import ReplicatedMariaDB

pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(shutil.which("mariadbd") is None, reason="needs the mariadbd binary"),
]

MYSQL = ["aiomysql", "asyncmy"]
_WHERE = "SELECT CONCAT(@@global.read_only + 0, ':', @@port)"


@pytest.fixture(scope="module")
def maria() -> Iterator[ReplicatedMariaDB]:
    pair = ReplicatedMariaDB()
    try:
        pair.start()
        yield pair
    finally:
        pair.close()


def _config(pair: ReplicatedMariaDB, order: tuple[Any, ...], **fields: Any) -> PoolConfig:
    fields.setdefault("min_size", 1)
    fields.setdefault("max_size", 2)
    return PoolConfig(url=pair.primary.url, hosts=pair.hosts(order), **fields)


async def _where(config: PoolConfig, adapter: str) -> str:
    async with open_pool(config, adapter=adapter) as pool, pool.acquire() as conn:
        return str(await raw_scalar(conn, _WHERE))


@pytest.mark.asyncio
@pytest.mark.parametrize("adapter", MYSQL)
async def test_target_primary_and_standby_by_read_only(
    maria: ReplicatedMariaDB, adapter: str
) -> None:
    primary = _config(maria, ("replica", "primary"), target_session_attrs="primary")
    assert await _where(primary, adapter) == f"0:{maria.primary.port}"
    standby = _config(maria, ("primary", "replica"), target_session_attrs="standby")
    assert await _where(standby, adapter) == f"1:{maria.replica.port}"
    first = _config(maria, ("replica", "primary"))
    assert await _where(first, adapter) == f"1:{maria.replica.port}"


@pytest.mark.asyncio
@pytest.mark.parametrize("adapter", MYSQL)
async def test_prefer_standby_falls_back_while_the_replica_is_down(
    maria: ReplicatedMariaDB, adapter: str, dead_host: str
) -> None:
    config = PoolConfig(
        url=maria.primary.url, hosts=[dead_host, *maria.hosts(("primary",))],
        target_session_attrs="prefer-standby", min_size=1, max_size=1,
    )  # fmt: skip
    assert await _where(config, adapter) == f"0:{maria.primary.port}"


async def _mysql_failover(pair: ReplicatedMariaDB, adapter: str, tasks: int) -> float:
    config = _config(
        pair, ("primary", "replica"), target_session_attrs="read-write", connect_timeout=1,
        acquire_timeout=3, min_size=2, max_size=5,
    )  # fmt: skip
    ok: list[tuple[float, str]] = []
    errors: list[BaseException] = []
    longest = 0.0
    stop = asyncio.Event()

    async def worker(pool: Any) -> None:
        nonlocal longest
        while not stop.is_set():
            start = time.monotonic()
            try:
                async with asyncio.timeout(5), pool.acquire() as conn:
                    ok.append((time.monotonic(), str(await raw_scalar(conn, _WHERE))))
            except Exception as exc:
                errors.append(exc)
                await asyncio.sleep(0.02)
            longest = max(longest, time.monotonic() - start)
            await asyncio.sleep(0.005)

    async with open_pool(config, adapter=adapter) as pool:
        workers = [asyncio.create_task(worker(pool)) for _ in range(tasks)]
        try:
            await asyncio.sleep(0.5)
            killed = time.monotonic()
            await asyncio.to_thread(pair.primary.kill)
            await asyncio.to_thread(pair.promote)
            target = f"0:{pair.replica.port}"
            while time.monotonic() - killed < 6:
                if any(t > killed and w == target for t, w in ok):
                    break
                await asyncio.sleep(0.02)
        finally:
            stop.set()
            await asyncio.gather(*workers)
    served = [t for t, w in ok if t > killed and w == target]
    assert served, f"the promoted replica served nothing; errors: {errors[-3:]!r}"
    assert served[0] - killed < 5.0, f"recovered after {served[0] - killed:.2f}s"
    assert longest < 3 + 1, f"a caller waited {longest:.2f}s"
    odd = [e for e in errors if not is_connection_error(e)]
    assert not odd, f"errors that are not connection-class: {odd[:3]!r}"
    return served[0] - killed


@pytest.mark.asyncio
async def test_failover_aiomysql_last_case_of_the_module(maria: ReplicatedMariaDB) -> None:
    recovered = await _mysql_failover(maria, "aiomysql", tasks=20)
    print(f"aiomysql failover: served by the promoted replica {recovered:.2f}s after the kill")


@pytest.fixture
def fresh_maria() -> Iterator[ReplicatedMariaDB]:
    pair = ReplicatedMariaDB()
    try:
        pair.start()
        yield pair
    finally:
        pair.close()


@pytest.mark.soak
@pytest.mark.asyncio
@pytest.mark.parametrize("adapter", MYSQL)
async def test_mysql_failover_under_200_tasks(fresh_maria: ReplicatedMariaDB, adapter: str) -> None:
    recovered = await _mysql_failover(fresh_maria, adapter, tasks=200)
    print(f"{adapter} failover (200 tasks): promoted replica serves {recovered:.2f}s after")
