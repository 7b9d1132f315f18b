"""Faults made by the callers themselves: cancellation storms and exhaustion under a slow
query. Nothing may leak: afterwards no connection is checked out or left in a
transaction, the server holds min_size..max_size of the pool's connections (never more than
max_size meanwhile) and the pool's stats agree with the server.
"""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from poolbridge import PoolTimeout

from ._harness import (
    ALL_STACKS,
    SLEEP,
    Probe,
    ServerView,
    Stack,
    assert_within_max,
    check_outcomes,
    recover,
    server_for,
    wait_healed,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.server, pytest.mark.timeout(30)]



async def _storm(probe: Probe, view: ServerView, tasks: int, window: float) -> None:
    """``tasks`` callers (acquire, short query, release) started over ``window`` seconds,
    each cancelled at a random moment of its life: waiting, querying or releasing."""
    rng = random.Random(8)
    sleep = SLEEP[probe.stack.backend].format(s=0.005)

    async def one() -> None:
        async with probe.pool.acquire() as conn:
            await probe.impl.fetch_scalar(conn, sleep)

    loop = asyncio.get_running_loop()
    futures: list[asyncio.Future[None]] = []
    for _ in range(tasks):
        fut = asyncio.ensure_future(one())
        loop.call_later(rng.uniform(0.0, 0.08), fut.cancel)
        futures.append(fut)
        if len(futures) % 50 == 0:
            await asyncio.sleep(window * 50 / tasks)
            await assert_within_max(view, probe)
    results = await asyncio.wait_for(
        asyncio.gather(*futures, return_exceptions=True), timeout=probe.cfg.acquire_timeout + 20
    )
    unexpected = [
        r for r in results
        if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError | PoolTimeout)
    ]  # fmt: skip
    assert not unexpected, f"{probe.stack.id}: storm callers failed with {unexpected[:3]!r}"
    cancelled = sum(isinstance(r, asyncio.CancelledError) for r in results)
    assert cancelled > 0, "the storm cancelled nothing: it tests nothing"


async def _after_storm(probe: Probe, view: ServerView) -> None:
    deadline = time.monotonic() + 10
    while probe.pool.stats()["connection.count.used"] != 0:
        assert time.monotonic() < deadline, (
            f"{probe.stack.id}: connections still checked out after the storm: "
            f"{probe.pool.stats()['connection.count.used']} (leaked by cancellation)"
        )
        await asyncio.sleep(0.05)
    alive = await wait_healed(view, probe)
    stuck = await view.in_transaction(alive)
    assert not stuck, f"{probe.stack.id}: idle connections left inside a transaction: {stuck}"
    await recover(probe, "SELECT 1", failures_allowed=0)


@pytest.mark.parametrize("stack", ALL_STACKS)
async def test_cancellation_storm(stack: Stack, request: pytest.FixtureRequest) -> None:
    url, view = server_for(request, stack)
    async with Probe(stack, url, {"acquire_timeout": 5.0}) as probe:
        await _storm(probe, view, tasks=1000, window=1.5)
        await _after_storm(probe, view)


@pytest.mark.soak
@pytest.mark.timeout(120)
@pytest.mark.parametrize("stack", ALL_STACKS)
async def test_cancellation_storm_soak(stack: Stack, request: pytest.FixtureRequest) -> None:
    url, view = server_for(request, stack)
    async with Probe(stack, url, {"acquire_timeout": 5.0}) as probe:
        await _storm(probe, view, tasks=10_000, window=15.0)
        await _after_storm(probe, view)


@pytest.mark.parametrize("stack", ALL_STACKS)
async def test_exhaustion_under_slow_query(stack: Stack, request: pytest.FixtureRequest) -> None:
    """3 connections, 12 callers of a 0.6 s query, acquire_timeout 1 s: the first callers
    are served, the rest get PoolTimeout after about 1 s — none waits longer."""
    url, view = server_for(request, stack)
    opts = {"min_size": 1, "max_size": 3, "acquire_timeout": 1.0}
    async with Probe(stack, url, opts) as probe:
        sleep = SLEEP[stack.backend].format(s=0.6)
        bound = probe.cfg.acquire_timeout + 0.6
        callers = [asyncio.ensure_future(probe.call(sleep, bound)) for _ in range(12)]
        await asyncio.sleep(0.4)
        await assert_within_max(view, probe)
        outcomes = await asyncio.gather(*callers)
        check_outcomes(stack, outcomes, bound)
        served = sum(o.ok for o in outcomes)
        timed_out = [o for o in outcomes if isinstance(o.error, PoolTimeout)]
        assert served >= probe.cfg.max_size, f"only {served} callers served"
        assert served + len(timed_out) == len(outcomes), (
            f"{stack.id}: exhausted callers must get PoolTimeout, got "
            f"{[type(o.error).__name__ for o in outcomes if not o.ok]}"
        )
        assert timed_out, "12 callers x 0.6 s on 3 connections within 1 s cannot all be served"
        assert probe.pool.stats()["connection.timeouts"] >= len(timed_out)
        await wait_healed(view, probe)
        await recover(probe, "SELECT 1", failures_allowed=0)
