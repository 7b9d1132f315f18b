"""Several hosts on the MySQL drivers against a MariaDB primary + GTID replica of the test's
own (system ``mariadbd`` binary, own data directories and loopback ports): a switchover
(the old primary turns read-only: writes fail with 1290, retried with
``poolbridge.retry(read_write=True)``) and a failover (kill the primary, promote the
replica) as the module's last, destructive case. Placement by ``@@read_only`` and the
fallback are conformance rows (suite/test_ha.py); the failover of every stack under 200
tasks is tests/ha/test_failover_rows.py (``make soak``)."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest

import poolbridge
from poolbridge import PoolConfig, open_pool
from poolbridge.drivers.base import raw_scalar
from poolbridge.pool.retrying import is_connection_error, is_wrong_host_error
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


async def _writer(pair: ReplicatedMariaDB) -> str:
    """A login without SUPER (MariaDB's read_only applies to it) that may write to
    ``pb_sw.writes``, replicated to the replica; its URL."""
    for sql in (
        "CREATE DATABASE IF NOT EXISTS pb_sw",
        "CREATE TABLE IF NOT EXISTS pb_sw.writes (id integer) ENGINE=InnoDB",
        "CREATE USER IF NOT EXISTS 'pb_sw'@'%'",
        "GRANT SELECT, INSERT ON pb_sw.* TO 'pb_sw'@'%'",
    ):
        await asyncio.to_thread(pair.primary.execute, sql)
    pos = (await asyncio.to_thread(pair.primary.execute, "SELECT @@global.gtid_binlog_pos"))[0][0]
    waited = await asyncio.to_thread(pair.replica.execute, f"SELECT MASTER_GTID_WAIT('{pos}', 30)")
    assert waited[0][0] == 0, "the replica did not replay the writer's grants"
    return f"mysql://pb_sw@{pair.primary.host}:{pair.primary.port}/pb_sw"


@pytest.mark.asyncio
@pytest.mark.parametrize("adapter", MYSQL)
async def test_switchover_read_only_1290_is_retried_for_a_read_write_pool(
    maria: ReplicatedMariaDB, adapter: str
) -> None:
    # a switchover keeps the old primary up with read_only=ON: its connections stay open and
    # writes fail with 1290. For a read-write pool that is the wrong host: the connection is
    # dropped and poolbridge.retry(read_write=True) runs the write again on the new primary
    url = await _writer(maria)
    config = PoolConfig(
        url=url, hosts=maria.hosts(("primary", "replica")), target_session_attrs="read-write",
        min_size=1, max_size=1, acquire_timeout=5,
    )  # fmt: skip
    errors: list[BaseException] = []

    def write(pool: Any) -> Any:
        async def run() -> int:
            async with pool.acquire() as conn, conn.cursor() as cur:
                try:
                    await cur.execute("INSERT INTO pb_sw.writes (id) VALUES (1)")
                except Exception as exc:
                    errors.append(exc)
                    raise
                await cur.execute("SELECT @@port")
                return int((await cur.fetchone())[0])

        return run

    async with (
        open_pool(config, adapter=adapter) as plain,
        open_pool(config, adapter=adapter) as rw,
    ):
        assert await write(plain)() == await write(rw)() == maria.primary.port
        await asyncio.to_thread(maria.primary.execute, "SET GLOBAL read_only = 1")
        await asyncio.to_thread(maria.promote)
        try:
            with pytest.raises(Exception) as info:
                await poolbridge.retry(initial_backoff=0.01)(write(plain))()
            assert is_wrong_host_error(info.value) and info.value.args[0] == 1290
            assert not is_connection_error(info.value)
            errors.clear()
            policy = poolbridge.retry(initial_backoff=0.01, read_write=True)
            assert await policy(write(rw))() == maria.replica.port
            assert policy.retries == 1
            assert [e.args[0] for e in errors] == [1290]
        finally:  # back to the original roles for the module's other cases
            await asyncio.to_thread(maria.replica.execute, "SET GLOBAL read_only = 1")
            await asyncio.to_thread(maria.primary.execute, "SET GLOBAL read_only = 0")
            await asyncio.to_thread(maria.replica.execute, "START SLAVE")


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
