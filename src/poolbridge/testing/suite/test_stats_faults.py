"""The stats_faults row (a fault row: it kills backends): ``pool.stats()`` agrees with the
server's count of the pool's connections during load, after a burst of cancellations
(mid-acquire and mid-query) and after connections are killed server-side.

The server's truth is every connection logged in as the test's own role (the role exists
for this test only), so a connection the pool opened without telling its stats is counted
too. Between two identical stats snapshots the pool's open count is taken as stable. The
workers go through every entry point of the adapter in turn, each in a task of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from poolbridge.pool.handle import Pool
from poolbridge.pool.stats import PoolStats
from poolbridge.testing.harness import Case, Session

MAX_SIZE = 4


async def _server_count(s: Session) -> int:
    """Connections of this test's role alive on the server right now."""
    if s.backend == "mysql":
        sql = (
            "SELECT count(*) FROM information_schema.PROCESSLIST "
            f"WHERE USER = '{s.role}' AND COMMAND <> 'Killed'"
        )
    else:
        sql = f"SELECT count(*) FROM pg_stat_activity WHERE usename = '{s.role}'"
    return int((await s.admin.fetch(sql))[0][0])


def _open(st: PoolStats) -> int:
    idle, used = st["connection.count.idle"], st["connection.count.used"]
    assert idle >= 0 and used >= 0, f"negative counts: {st}"
    assert used <= MAX_SIZE and idle + used <= MAX_SIZE, f"more than max_size: {st}"
    assert idle + used == st["connection.created"] - st["connection.closed"], st
    return int(idle + used)


async def _agrees(s: Session, pool: Pool[Any]) -> tuple[bool, str]:
    """Whether the pool's open count equals the server's (pool stable around the query)."""
    before = _open(pool.stats())
    server = await _server_count(s)
    after = _open(pool.stats())
    return before == after == server, f"stats {before}->{after}, server {server}"


async def _settled(s: Session, pool: Pool[Any], what: str) -> None:
    """Wait (up to 5 s) until nothing is checked out or waiting and stats == server."""
    last = ""

    async def probe() -> bool:
        nonlocal last
        st = pool.stats()
        if st["connection.count.used"] or st["connection.pending_requests"]:
            last = (
                f"used {st['connection.count.used']}, pending {st['connection.pending_requests']}"
            )
            return False
        ok, last = await _agrees(s, pool)
        return ok

    assert await s.wait_for(probe, timeout=5.0), f"{what}: stats never matched the server ({last})"


async def _stats_faults(s: Session) -> None:
    pool = await s.open(s.config(min_size=1, max_size=MAX_SIZE, acquire_timeout=10))
    points = list(s.case.adapter.entry_points(pool))
    holders = 0
    started = 0

    async def worker(rounds: int, seconds: float) -> None:
        nonlocal holders, started
        for _ in range(rounds):
            started += 1
            async with s.use(pool, points[started % len(points)]) as run:
                holders += 1
                try:
                    await run(s.sleep_sql(seconds))
                finally:
                    holders -= 1

    # 1. during load: 3x max_size workers; sample once every connection is open
    load = [asyncio.create_task(worker(2, 0.05)) for _ in range(3 * MAX_SIZE)]
    try:

        async def full() -> bool:
            st = pool.stats()
            assert holders <= st["connection.count.used"], (holders, st)
            return bool(_open(st) == MAX_SIZE)

        assert await s.wait_for(full, timeout=5.0, step=0.01), f"never grew: {pool.stats()}"
        compared = 0
        saw_waiters = False
        for _ in range(5):
            st = pool.stats()
            assert holders <= st["connection.count.used"] <= MAX_SIZE, (holders, st)
            saw_waiters |= st["connection.pending_requests"] > 0
            ok, detail = await _agrees(s, pool)
            if detail.startswith(f"stats {MAX_SIZE}->{MAX_SIZE}"):
                assert ok, f"mid-load: {detail}"
                compared += 1
            await asyncio.sleep(0.02)
        assert compared, "no stable moment to compare during load"
        assert saw_waiters, f"{3 * MAX_SIZE} workers on {MAX_SIZE} connections: nobody waited?"
    finally:
        await asyncio.gather(*load)
    await _settled(s, pool, "after the load")

    # 2. a cancellation burst: 100 tasks, MAX_SIZE of them mid-query, the rest mid-acquire
    burst = [asyncio.create_task(worker(1, 0.5)) for _ in range(100)]

    async def busy() -> bool:
        return holders == MAX_SIZE

    assert await s.wait_for(busy, timeout=5.0, step=0.01), f"not busy: {pool.stats()}"
    await asyncio.sleep(0.05)  # the statements are running on the server
    assert pool.stats()["connection.pending_requests"] > 0, "nobody was waiting to acquire"
    for task in burst:
        task.cancel()
    await asyncio.gather(*burst, return_exceptions=True)
    await _settled(s, pool, "after the cancellation burst")
    # every slot serves again (each use in its own task: an ORM entry point nested in one
    # task may hand out the connection it already holds)
    everyone, done = asyncio.Event(), asyncio.Event()
    served = 0

    async def serve(i: int) -> None:
        nonlocal served
        async with s.use(pool, points[i % len(points)]) as run:
            assert await run("SELECT 1") == 1
            served += 1
            if served == MAX_SIZE:
                everyone.set()
            await done.wait()

    async def check_full() -> None:
        try:
            await everyone.wait()
            assert pool.stats()["connection.count.used"] == MAX_SIZE
            ok, detail = await _agrees(s, pool)
            assert ok, f"all checked out after the burst: {detail}"
        finally:
            done.set()

    await asyncio.gather(check_full(), *(serve(i) for i in range(MAX_SIZE)))
    await _settled(s, pool, "after the burst, idle again")

    # 3. kills: two of the pool's connections die server-side; the pool finds out by using them
    alive = sorted(await s.alive(pool))
    assert len(alive) == _open(pool.stats()) >= 2, (alive, pool.stats())
    victims = alive[:2]
    closed_before = pool.stats()["connection.closed"]
    for victim in victims:
        await s.admin.kill(victim)
    assert not await s.admin.wait_gone(victims)

    async def touch(i: int) -> None:
        with contextlib.suppress(Exception):
            async with s.use(pool, points[i % len(points)]) as run:
                await run("SELECT 1")
                await asyncio.sleep(0.02)  # overlap: every connection gets used

    async def noticed() -> bool:
        await asyncio.gather(*(touch(i) for i in range(MAX_SIZE)))
        st = pool.stats()
        return (
            st["connection.closed"] - closed_before >= len(victims) and (await _agrees(s, pool))[0]
        )

    assert await s.wait_for(noticed, timeout=8.0, step=0.05), (
        f"after killing {victims}: stats {pool.stats()} vs server {await _server_count(s)}"
    )
    await _settled(s, pool, "after the kills")
    assert not set(victims) & await s.alive(pool)


@pytest.mark.poolbridge_requirement("stats_faults")
def test_stats_true_under_faults(poolbridge_case: Case) -> None:
    poolbridge_case.run(_stats_faults)
