"""Random cancellation never loses or double-hands a connection (fake driver)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from .fake import FakeDriver, make_engine, opened
from .storm import assert_accounted, cancel_storm, settle

pytestmark = pytest.mark.asyncio


async def _use(conn: Any, rng: random.Random) -> None:
    if rng.random() < 0.5:
        conn.in_txn = True  # forces an awaited rollback at checkin: another cancel point
    await asyncio.sleep(0)
    if rng.random() < 0.05:
        raise_error = ConnectionResetError("lost mid-use")
        raise raise_error


async def _storm(cycles: int, seed: int) -> None:
    driver = FakeDriver()
    driver.connect_yields = 3
    engine = make_engine(driver, min_size=1, max_size=4, acquire_timeout=5, max_lifetime=0.05)
    async with opened(engine):

        async def use(conn: Any, rng: random.Random) -> None:
            try:
                await _use(conn, rng)
            except ConnectionResetError:
                engine.discard(conn)

        outcomes = await cancel_storm(engine, cycles, seed=seed, use=use)
        assert outcomes["ok"] > 0 and outcomes["cancelled"] > 0
        await settle(engine)
        assert_accounted(engine)
        # every connection the driver ever opened is in the pool or closed
        live = {c.id for c in driver.opened if not c.closed}
        assert live == set(engine.server_ids())
        assert driver.max_concurrent <= 4
    assert all(c.closed for c in driver.opened)


async def test_1000_random_cancellations() -> None:
    await _storm(1000, seed=1)


@pytest.mark.soak
async def test_10000_random_cancellations() -> None:
    await _storm(10_000, seed=2)
