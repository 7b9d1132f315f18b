"""Rows about things going wrong: killed backends (opt-in fault rows: refill, pre_ping),
cancellation storms, connections returned dirty (reset)."""

from __future__ import annotations

import asyncio
import contextlib
import random

import pytest

from poolbridge.testing.harness import Case, Session


async def _refill(s: Session) -> None:
    pool = await s.open(s.config(min_size=2, max_size=3, acquire_timeout=5))
    victim = sorted(s.ids(pool), key=str)[0]
    await s.admin.kill(victim)
    assert not await s.admin.wait_gone([victim])

    async def back_to_min() -> bool:
        # the pool may learn of the death only when it uses the connection
        with contextlib.suppress(Exception):
            async with pool.acquire() as conn:
                await s.case.adapter.fetch_scalar(conn, "SELECT 1")
        alive = await s.alive(pool)
        return victim not in alive and len(alive) >= 2

    assert await s.wait_for(back_to_min, timeout=8.0, step=0.1), (
        f"pool not back to min_size=2 after killing {victim}: alive {await s.alive(pool)}"
    )


@pytest.mark.poolbridge_requirement("refill")
def test_refill_after_kill(poolbridge_case: Case) -> None:
    poolbridge_case.run(_refill)


async def _pre_ping(s: Session) -> None:
    pool = await s.open(s.config(min_size=1, max_size=1, pre_ping=True, acquire_timeout=5))
    async with s.use(pool) as run:
        victim = await s.server_id(run)
    assert victim is not None
    await s.admin.kill(victim)
    assert not await s.admin.wait_gone([victim])
    async with s.use(pool) as run:  # no error may reach the caller
        assert await run("SELECT 7") == 7
        assert await s.server_id(run) != victim


@pytest.mark.poolbridge_requirement("pre_ping")
@pytest.mark.poolbridge_entry_points
def test_pre_ping_replaces_killed(poolbridge_case: Case) -> None:
    poolbridge_case.run(_pre_ping)


async def _cancellation(s: Session) -> None:
    max_size = 3
    await s.set_limit(max_size)
    pool = await s.open(s.config(min_size=1, max_size=max_size, acquire_timeout=10))
    rng = random.Random(20240601)
    started = 0
    in_query: set[asyncio.Task[None]] = set()

    async def worker() -> None:
        nonlocal started
        async with s.use(pool) as run:
            started += 1
            me = asyncio.current_task()
            assert me is not None
            in_query.add(me)
            try:
                if s.server_side:
                    await run(s.sleep_sql(0.2))
                else:
                    await run("SELECT 1")
                    await asyncio.sleep(0.2)
            finally:
                in_query.discard(me)

    tasks = [asyncio.create_task(worker()) for _ in range(200)]

    async def busy() -> bool:
        return len(in_query) >= 2

    assert await s.wait_for(busy, timeout=10.0), "no two tasks ever reached their query"
    mid_query = list(in_query)
    for task in mid_query:  # cancelled while their statement runs on the server
        task.cancel()
    for task in rng.sample(tasks, len(tasks)):  # the rest: mostly while waiting to acquire
        task.cancel()
        if rng.random() < 0.1:
            await asyncio.sleep(0.01)  # let some reach their query before the cancel
    await asyncio.gather(*tasks, return_exceptions=True)
    # the stack may turn the cancellation into its own error (a transaction block rolling
    # back), but a mid-query task must not complete as if nothing happened
    assert all(t.cancelled() or t.exception() is not None for t in mid_query), (
        "a task cancelled mid-query completed normally"
    )

    async def settled() -> bool:
        return bool(pool.stats()["connection.count.used"] == 0)

    assert await s.wait_for(settled, timeout=5.0), f"still checked out: {pool.stats()}"
    # every slot is usable again: max_size concurrent checkouts succeed
    async with contextlib.AsyncExitStack() as stack:
        runs = [await stack.enter_async_context(s.use(pool)) for _ in range(max_size)]
        for run in runs:
            assert await run("SELECT 1") == 1
    if s.server_side:
        alive = await s.alive(pool)
        assert len(alive) <= max_size
        for cid in alive:
            assert not await s.admin.in_transaction(cid), f"connection {cid} left in a transaction"


@pytest.mark.poolbridge_requirement("cancellation")
@pytest.mark.poolbridge_entry_points
def test_cancellation_storm_leaks_nothing(poolbridge_case: Case) -> None:
    poolbridge_case.run(_cancellation)


async def _reset(s: Session) -> None:
    table = await s.table()
    pool = await s.open(s.config(min_size=1, max_size=1))
    async with s.use(pool) as run:
        with contextlib.suppress(Exception):
            await run("BEGIN")  # some stacks are already inside a transaction
        await run(f"INSERT INTO {table} (id) VALUES (1)")
        first = await s.server_id(run)
    if s.server_side and first is not None:
        assert not await s.admin.in_transaction(first), "returned inside an open transaction"
    committed = await s.admin.count_rows(table)  # 0, or 1 if the entry point commits
    async with s.use(pool) as run:
        if s.server_side:
            assert await s.server_id(run) == first, "max_size=1: the same connection again"
        seen = await run(f"SELECT count(*) FROM {table}")
        assert int(seen) == committed, "the next user saw the previous user's transaction"
    if s.case.entry_point == "handle":
        assert committed == 0, "the handle must roll back, not commit, at checkin"


@pytest.mark.poolbridge_requirement("reset")
@pytest.mark.poolbridge_entry_points
def test_reset_rolls_back(poolbridge_case: Case) -> None:
    poolbridge_case.run(_reset)


_SESSION_PROBES = {
    "postgresql": ("SHOW work_mem", "SET work_mem = '7MB'"),
    "mysql": ("SELECT @pb_mark", "SET @pb_mark = 42"),
    "sqlite": ("PRAGMA cache_size", "PRAGMA cache_size = 1234"),
}


async def _reset_full(s: Session) -> None:
    probe, change = _SESSION_PROBES[s.backend]
    pool = await s.open(s.config(min_size=1, max_size=1, reset="full"))
    async with s.use(pool, "handle") as run:
        pristine = await run(probe)
        await run(change)
        with contextlib.suppress(Exception):
            await run("COMMIT")  # keep the change past the rollback of the checkin
        changed = await run(probe)
    assert changed != pristine, "the probe did not change the session"
    connects = len(s.of(pool, "on_connect"))
    async with s.use(pool, "handle") as run:
        assert await run(probe) == pristine, "session state survived a full reset"
    assert len(s.of(pool, "on_connect")) == connects + 1, (
        "on_connect must run again after a full reset (or for the replacement connection)"
    )


@pytest.mark.poolbridge_requirement("reset_full")
def test_full_reset_discards_session_state(poolbridge_case: Case) -> None:
    poolbridge_case.run(_reset_full)
