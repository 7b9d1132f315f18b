"""BridgePool's waiters: bare futures bounded by one deadline timer per pool."""

from __future__ import annotations

import asyncio
from time import monotonic

import pytest
from sqlalchemy import text

from poolbridge.adapters.sqlalchemy import close_engine, create_async_engine, warm_up
from poolbridge.errors import PoolTimeout

from .conftest import Target

pytestmark = pytest.mark.asyncio


async def test_each_waiter_times_out_at_its_own_deadline(target: Target) -> None:
    cfg = target.config(min_size=0, max_size=1, acquire_timeout=0.3)
    engine = await warm_up(create_async_engine(cfg))
    try:
        held = await engine.connect()
        pool = engine.sync_engine.pool

        async def waiter(delay: float) -> float:
            await asyncio.sleep(delay)
            start = monotonic()
            with pytest.raises(PoolTimeout):
                await engine.connect()
            return monotonic() - start

        # staggered: the shared timer must re-arm for each later deadline
        waits = await asyncio.wait_for(asyncio.gather(*(waiter(d) for d in (0, 0.1, 0.2))), 10)
        assert all(0.29 <= w < 1.5 for w in waits), waits
        assert pool.waiting == 0
        assert not pool._queue.armed and not pool._queue.deadlines  # nothing left armed
        await held.close()
        async with engine.connect() as conn:  # the slot still serves
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
    finally:
        await close_engine(engine)
