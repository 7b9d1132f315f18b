"""Rows about how many connections exist and who gets them: connect, min_size, max_size,
acquire_timeout, max_waiting, fairness."""

from __future__ import annotations

import asyncio

import pytest

from poolbridge.errors import PoolTimeout, TooManyRequests
from poolbridge.testing.harness import Case, Session


async def _connect(s: Session) -> None:
    cfg = s.config(min_size=1, max_size=2)
    pool = await s.open(cfg)
    async with s.use(pool) as run:
        assert await run("SELECT 41 + 1") == 42
        if s.server_side:
            sid = await s.server_id(run)
            assert sid in s.ids(pool), (
                f"the connection's server id {sid} is not among the ids on_connect recorded "
                f"{sorted(map(str, s.ids(pool)))}"
            )
            if s.backend == "postgresql":
                assert await run("SELECT current_user") == s.role
                assert await run("SELECT current_setting('application_name')") == cfg.name
            else:
                user = await run("SELECT CURRENT_USER()")
                assert str(user).split("@")[0] == s.role
            database = s.admin.config.database_url.database
            pg = s.backend == "postgresql"
            db_sql = "SELECT current_database()" if pg else "SELECT DATABASE()"
            assert await run(db_sql) == database
    assert s.of(pool, "on_connect"), "on_connect never fired (or with another pool name)"
    assert {e.pool for e in s.of(pool)} == {cfg.name}


@pytest.mark.poolbridge_requirement("connect")
@pytest.mark.poolbridge_entry_points
def test_connect(poolbridge_case: Case) -> None:
    poolbridge_case.run(_connect)


async def _min_size(s: Session) -> None:
    pool = await s.open(s.config(min_size=2, max_size=4))
    ids = s.ids(pool)
    assert len(s.of(pool, "on_connect")) == 2, "open() must warm the pool up to min_size"
    assert len(ids) == 2
    if s.server_side:
        assert await s.alive(pool) == ids
        assert s.role is not None
        assert await s.admin.count_role_connections(s.role) == 2


@pytest.mark.poolbridge_requirement("min_size")
def test_min_size_after_open(poolbridge_case: Case) -> None:
    poolbridge_case.run(_min_size)


async def _max_size(s: Session) -> None:
    max_size = 3
    await s.set_limit(max_size)  # the server refuses a 4th connection of this role
    pool = await s.open(s.config(min_size=1, max_size=max_size, acquire_timeout=20))
    server_high = 0
    done = asyncio.Event()

    async def worker() -> None:
        async with s.use(pool) as run:
            if s.server_side:
                await run(s.sleep_sql(0.02))
            else:
                await run("SELECT 1")
                await asyncio.sleep(0.01)

    async def sampler() -> None:
        nonlocal server_high
        while not done.is_set():
            assert s.role is not None
            server_high = max(server_high, await s.admin.count_role_connections(s.role))
            await asyncio.sleep(0.01)

    sampling = asyncio.create_task(sampler()) if s.server_side else None
    try:
        await asyncio.gather(*(worker() for _ in range(10 * max_size)))
    finally:
        done.set()
        if sampling is not None:
            await sampling
    # high-water mark of checked-out connections, from the hooks' own timeline
    in_use = high = 0
    for e in s.of(pool):
        if e.hook == "on_checkout":
            in_use += 1
            high = max(high, in_use)
        elif e.hook == "on_checkin":
            in_use -= 1
    assert high <= max_size, f"{high} connections were checked out at once (max_size={max_size})"
    assert len(s.of(pool, "on_checkout")) >= 10 * max_size
    if s.server_side:
        assert server_high <= max_size
        assert len(await s.alive(pool)) <= max_size


@pytest.mark.poolbridge_requirement("max_size")
@pytest.mark.poolbridge_entry_points
def test_max_size_never_exceeded(poolbridge_case: Case) -> None:
    poolbridge_case.run(_max_size)


async def _acquire_timeout(s: Session) -> None:
    cfg = s.config(min_size=1, max_size=1, acquire_timeout=0.5)
    pool = await s.open(cfg)
    loop = asyncio.get_running_loop()
    async with pool.acquire():
        t0 = loop.time()
        with pytest.raises(PoolTimeout) as info:
            async with s.use(pool) as run:
                await run("SELECT 1")
        waited = loop.time() - t0
    assert waited >= 0.4, f"PoolTimeout after {waited:.3f} s, before acquire_timeout=0.5"
    assert waited < 4.0, f"PoolTimeout only after {waited:.3f} s (acquire_timeout=0.5)"
    message = str(info.value)
    assert cfg.name in message and "max_size" in message, f"no diagnostics in {message!r}"
    async with s.use(pool) as run:  # serves again once the holder is gone
        assert await run("SELECT 2") == 2


@pytest.mark.poolbridge_requirement("acquire_timeout")
@pytest.mark.poolbridge_entry_points
def test_acquire_timeout(poolbridge_case: Case) -> None:
    poolbridge_case.run(_acquire_timeout)


async def _max_waiting(s: Session) -> None:
    pool = await s.open(s.config(min_size=1, max_size=1, max_waiting=2, acquire_timeout=10))
    loop = asyncio.get_running_loop()
    served: list[int] = []

    async def waiter(i: int) -> None:
        async with s.use(pool) as run:
            assert await run("SELECT 1") == 1
            served.append(i)

    async with pool.acquire():
        waiters = [asyncio.create_task(waiter(i)) for i in range(2)]
        await asyncio.sleep(0.3)  # let both queue up
        t0 = loop.time()
        with pytest.raises(TooManyRequests):
            async with s.use(pool) as run:
                await run("SELECT 1")
        refused_after = loop.time() - t0
    await asyncio.gather(*waiters)
    assert refused_after < 2.0, f"TooManyRequests only after {refused_after:.3f} s"
    assert sorted(served) == [0, 1], "the queued callers must be served after the refusal"


@pytest.mark.poolbridge_requirement("max_waiting")
@pytest.mark.poolbridge_entry_points
def test_max_waiting(poolbridge_case: Case) -> None:
    poolbridge_case.run(_max_waiting)


async def _fairness(s: Session) -> None:
    pool = await s.open(s.config(min_size=1, max_size=1, acquire_timeout=10))
    order: list[tuple[int, int]] = []

    async def waiter(i: int) -> None:
        for round_ in range(2):  # the second round is a greedy immediate re-acquire
            async with s.use(pool) as run:
                await run("SELECT 1")
                order.append((round_, i))

    n = 5
    async with pool.acquire():
        tasks = []
        for i in range(n):
            tasks.append(asyncio.create_task(waiter(i)))
            await asyncio.sleep(0.1)  # queue them in a known order
    await asyncio.gather(*tasks)
    first = [i for r, i in order[:n]]
    assert first == list(range(n)), f"waiters not served first-come first-served: {order}"
    assert order[n:] == [(1, i) for i in range(n)], f"a greedy re-acquirer barged: {order}"


@pytest.mark.poolbridge_requirement("fairness")
@pytest.mark.poolbridge_entry_points
def test_fairness_fifo(poolbridge_case: Case) -> None:
    poolbridge_case.run(_fairness)
