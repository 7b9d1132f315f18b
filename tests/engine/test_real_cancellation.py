"""Random acquire/cancel storms on the real drivers, checked server-side."""

from __future__ import annotations

import random
from typing import Any

import pytest

from poolbridge.pool.hooks import ConnectionEvent, Hooks

from .real import ADAPTERS, Server, Target, target_for
from .storm import assert_accounted, cancel_storm, settle

pytestmark = [pytest.mark.asyncio, pytest.mark.server]

CYCLES = {"asyncpg": 1000, "aiomysql": 1000}  # the default drivers: long storms; ~200 elsewhere


@pytest.fixture(params=ADAPTERS)
def target(request: pytest.FixtureRequest) -> Target:
    return target_for(request, request.param)


async def _storm(target: Target, cycles: int, seed: int) -> None:
    recorded: list[ConnectionEvent] = []
    pool = await target.open(
        Hooks(on_connect=recorded.append), min_size=1, max_size=3, acquire_timeout=20
    )
    engine = pool.engine

    async def use(conn: Any, rng: random.Random) -> None:
        if rng.random() < 0.3:
            await target.begin(conn)
        assert await target.scalar(conn, "SELECT 1") == 1

    try:
        outcomes = await cancel_storm(engine, cycles, seed=seed, use=use, concurrency=8,
                                      max_delay_steps=40)  # fmt: skip
        assert outcomes["ok"] > 0 and outcomes["cancelled"] > 0
        await settle(engine)
        assert_accounted(engine)
        ids = engine.server_ids()
        async with Server(target) as server:
            if server.has_server:
                alive = await server.alive(e.connection_id for e in recorded)
                assert alive == set(ids), "server-side connections differ from the pool's"
                assert 1 <= len(alive) <= 3
        # and the pool still works
        async with pool.acquire() as conn:
            assert await target.scalar(conn, "SELECT 1") == 1
    finally:
        await pool.close(timeout=5)


async def test_random_cancellation_storm(target: Target) -> None:
    await _storm(target, CYCLES.get(target.adapter, 200), seed=11)


@pytest.mark.soak
async def test_random_cancellation_soak(target: Target) -> None:
    await _storm(target, 10_000, seed=12)
