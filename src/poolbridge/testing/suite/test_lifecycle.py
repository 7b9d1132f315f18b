"""Rows about a connection's life and the pool's own: max_lifetime, max_idle, hooks, stats,
close, isolation between pools, leak reports."""

from __future__ import annotations

import asyncio

import pytest

from poolbridge.errors import PoolClosed, PoolTimeout
from poolbridge.testing.harness import Case, Session


async def _max_lifetime(s: Session) -> None:
    pool = await s.open(s.config(min_size=1, max_size=2, max_lifetime=1.0, max_idle=None))
    first = set(s.ids(pool))
    assert len(first) == 1

    async def replaced() -> bool:
        async with pool.acquire():  # some stacks recycle at checkout only
            pass
        if s.server_side:
            return not await s.admin.alive(first) and len(await s.alive(pool)) >= 1
        return len(s.ids(pool)) > 1 and bool(
            {e.connection_id for e in s.of(pool, "on_close")} & first
        )

    assert await s.wait_for(replaced, timeout=6.0, step=0.2), (
        "a connection older than max_lifetime=1.0 s was still in use after 6 s"
    )
    async with s.use(pool) as run:
        assert await run("SELECT 1") == 1
        if s.server_side:
            assert await s.server_id(run) not in first


@pytest.mark.poolbridge_requirement("max_lifetime")
def test_max_lifetime_replaces(poolbridge_case: Case) -> None:
    poolbridge_case.run(_max_lifetime)


async def _max_idle(s: Session) -> None:
    max_idle = 1.0
    pool = await s.open(s.config(min_size=1, max_size=3, max_idle=max_idle, max_lifetime=None))
    loop = asyncio.get_running_loop()
    holders = [pool.acquire() for _ in range(3)]
    for h in holders:
        await h.__aenter__()
    for h in holders:
        await h.__aexit__(None, None, None)
    released = loop.time()
    grown = set(s.ids(pool))
    assert len(grown) == 3

    async def open_count() -> int:
        if s.server_side:
            return len(await s.alive(pool))
        closed = {e.connection_id for e in s.of(pool, "on_close")}
        return len(s.ids(pool) - closed)

    await asyncio.sleep(max_idle * 0.4)
    if loop.time() - released < max_idle * 0.9:  # a slow machine makes this check moot
        assert await open_count() == 3, "idle connections closed before max_idle"

    async def shrunk() -> bool:
        return await open_count() <= 1

    assert await s.wait_for(shrunk, timeout=max_idle * 6 + 2, step=0.1), (
        f"idle connections above min_size still open after {max_idle * 6 + 2} s"
    )
    await asyncio.sleep(max_idle * 1.5)
    assert await open_count() == 1, "max_idle closed connections below min_size"


@pytest.mark.poolbridge_requirement("max_idle")
def test_max_idle_shrinks_to_min_size(poolbridge_case: Case) -> None:
    poolbridge_case.run(_max_idle)


async def _hooks(s: Session) -> None:
    cfg = s.config(min_size=1, max_size=2, acquire_timeout=0.3)
    pool = await s.open(cfg)
    assert [e.hook for e in s.of(pool)] == ["on_connect"], "open() fires on_connect only"
    seen: list[int | str | None] = []
    for _ in range(3):
        async with s.use(pool) as run:
            seen.append(await s.server_id(run))
    async with pool.acquire(), pool.acquire():
        with pytest.raises(PoolTimeout):
            async with pool.acquire():
                pass
    await pool.close()
    events = s.of(pool)
    count = {h: sum(1 for e in events if e.hook == h) for h in {e.hook for e in events}}
    assert count.get("on_checkout") == count.get("on_checkin") == 5, count
    assert count.get("on_timeout") == 1, count
    assert [e.connection_id for e in s.of(pool, "on_timeout")] == [None]
    ids = s.ids(pool)
    assert len(ids) == count["on_connect"] == 2, "one on_connect per physical connection"
    assert {e.connection_id for e in s.of(pool, "on_close")} == ids, "on_close for every one"
    if s.server_side:
        assert set(seen) <= ids, "events must carry the server-side connection id"
    for cid in ids:  # per connection: connect < checkout < checkin < ... < close
        mine = [e.hook for e in events if e.connection_id == cid and e.hook != "on_timeout"]
        assert mine[0] == "on_connect" and mine[-1] == "on_close", mine
        middle = mine[1:-1]
        assert middle == ["on_checkout", "on_checkin"] * (len(middle) // 2), mine
    assert all(e.held is not None and e.held >= 0 for e in s.of(pool, "on_checkin"))


@pytest.mark.poolbridge_requirement("hooks")
@pytest.mark.poolbridge_entry_points
def test_hooks_order_and_counts(poolbridge_case: Case) -> None:
    poolbridge_case.run(_hooks)


async def _stats(s: Session) -> None:
    pool = await s.open(s.config(min_size=2, max_size=3, acquire_timeout=0.3))

    async def server_count() -> int:
        return len(await s.alive(pool)) if s.server_side else len(s.ids(pool))

    st = pool.stats()
    assert st["connection.count.idle"] + st["connection.count.used"] == await server_count() == 2
    assert st["connection.max"] == 3 and st["connection.idle.min"] == 2
    async with pool.acquire(), pool.acquire(), pool.acquire():
        st = pool.stats()
        assert st["connection.count.used"] == 3 and st["connection.count.idle"] == 0
        assert await server_count() == 3
        with pytest.raises(PoolTimeout):
            async with pool.acquire():
                pass

        async def waiter() -> None:
            async with pool.acquire():
                pass

        waiters = [asyncio.create_task(waiter()) for _ in range(2)]
        await asyncio.sleep(0.1)
        assert pool.stats()["connection.pending_requests"] == 2
        for w in waiters:
            w.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
        assert pool.stats()["connection.pending_requests"] == 0
    st = pool.stats()
    assert st["connection.count.used"] == 0
    assert st["connection.count.idle"] == await server_count()
    assert st["connection.timeouts"] == 1
    assert st["connection.created"] == len(s.ids(pool)) == 3
    assert st["connection.wait_time"]["count"] >= 3
    assert st["connection.use_time"]["count"] == 3
    await pool.close()
    st = pool.stats()
    assert st["connection.closed"] == st["connection.created"]
    assert st["connection.count.idle"] == st["connection.count.used"] == 0


@pytest.mark.poolbridge_requirement("stats")
def test_stats_agree_with_server(poolbridge_case: Case) -> None:
    poolbridge_case.run(_stats)


async def _close(s: Session) -> None:
    pool = await s.open(s.config(min_size=2, max_size=3))
    held = asyncio.Event()
    leave = asyncio.Event()

    async def holder() -> None:
        async with pool.acquire():
            held.set()
            await leave.wait()

    task = asyncio.create_task(holder())
    await held.wait()
    async with s.use(pool) as run:
        assert await run("SELECT 1") == 1
    ids = s.ids(pool)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await pool.close(timeout=0.5)  # one connection is still checked out: drained, then cut
    assert loop.time() - t0 < 5.0, "close(timeout=0.5) must not wait for the holder"
    assert pool.closed
    if s.server_side:
        still = await s.admin.wait_gone(ids, timeout=5.0)
        assert not still, f"server connections {sorted(still)} survived close()"
    else:
        assert {e.connection_id for e in s.of(pool, "on_close")} == ids
    leave.set()
    await asyncio.gather(task, return_exceptions=True)
    with pytest.raises(PoolClosed):
        async with s.use(pool) as run:
            await run("SELECT 1")
    await pool.close()  # idempotent


@pytest.mark.poolbridge_requirement("close")
@pytest.mark.poolbridge_entry_points
def test_close_leaves_nothing(poolbridge_case: Case) -> None:
    poolbridge_case.run(_close)


async def _isolation(s: Session) -> None:
    await s.set_limit(4)
    base = s.config(min_size=1, max_size=2, acquire_timeout=0.5)
    a = await s.open(base)
    b = await s.open(s.config(min_size=1, max_size=2, acquire_timeout=0.5))
    async with a.acquire(), a.acquire():
        with pytest.raises(PoolTimeout):  # a is full...
            async with a.acquire():
                pass
        async with b.acquire(), b.acquire():  # ...b still has its own two
            pass
    assert not (s.ids(a) & s.ids(b)), "two pools must not share connections"
    assert len(s.ids(a)) == len(s.ids(b)) == 2
    await a.close()
    if s.server_side:
        assert not await s.admin.wait_gone(s.ids(a))
        assert len(await s.alive(b)) == 2, "closing one pool closed the other's connections"
    async with b.acquire():
        pass


@pytest.mark.poolbridge_requirement("isolation")
def test_two_pools_keep_their_own_limits(poolbridge_case: Case) -> None:
    poolbridge_case.run(_isolation)


async def _leak(s: Session) -> None:
    pool = await s.open(s.config(min_size=1, max_size=2, leak_timeout=0.3))

    async def leaky_caller_site() -> None:
        async with pool.acquire():
            await asyncio.sleep(1.2)

    await leaky_caller_site()
    async with pool.acquire():  # a short hold is not a leak
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    leaks = s.of(pool, "on_leak")
    assert len(leaks) == 1, f"expected one on_leak, got {len(leaks)}"
    assert leaks[0].stack and "leaky_caller_site" in leaks[0].stack
    assert leaks[0].held is not None and leaks[0].held >= 0.3


@pytest.mark.poolbridge_requirement("leak")
def test_leak_reported_once(poolbridge_case: Case) -> None:
    poolbridge_case.run(_leak)
