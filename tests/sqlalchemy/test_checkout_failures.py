"""A checkout that fails after BridgePool._do_get handed out a connection (an application's
``checkout`` listener raising or cancelled, a reconnect failing in SQLAlchemy's
``get_connection``): SQLAlchemy gives the record back through ``_return_conn`` before
BridgePool.connect() ran, and nothing of that checkout may stay behind."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.util import await_

from poolbridge.adapters.sqlalchemy import close_engine, create_async_engine, engine_state, warm_up
from poolbridge.adapters.sqlalchemy._state import BridgeState

from .conftest import Target, eventually

pytestmark = pytest.mark.asyncio


def _assert_nothing_left(st: BridgeState) -> None:
    pool = st.pool
    assert pool is not None
    snap = st.recorder.snapshot()
    assert snap["connection.count.used"] == 0
    assert snap["connection.pending_requests"] == 0
    assert not st.checked_out
    assert st.leaks is not None and st.leaks.open_count == 0
    # the wait _do_get noted for connect() (which never ran): dropped with the record
    assert not st.waits, list(st.waits.values())
    assert pool.open_slots == len(st.live_ids) == pool.idle_count


@pytest.mark.parametrize("how", ["raises", "cancelled"])
async def test_failed_checkout_leaves_no_bookkeeping(target: Target, how: str) -> None:
    engine = await warm_up(
        create_async_engine(
            target.config(min_size=1, max_size=2, acquire_timeout=5, leak_timeout=60)
        )
    )
    st = engine_state(engine)
    entered = asyncio.Event()
    armed = {"on": True}

    def checkout(dbapi_conn: Any, rec: Any, proxy: Any) -> None:
        if not armed["on"]:
            return
        if how == "raises":
            raise RuntimeError("application checkout listener failed")
        entered.set()
        await_(asyncio.sleep(30))  # cancelled here

    pool = engine.sync_engine.pool
    event.listen(pool, "checkout", checkout)
    try:
        for _ in range(3):
            if how == "raises":
                with pytest.raises(RuntimeError):
                    async with engine.connect():
                        pass
            else:
                entered.clear()

                async def use() -> None:
                    async with engine.connect():
                        pass

                task = asyncio.create_task(use())
                await asyncio.wait_for(entered.wait(), 5)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task

        async def settled() -> bool:
            p = st.pool
            return p is not None and p.open_slots == len(st.live_ids) == p.idle_count >= 1

        assert await eventually(settled, timeout=5)
        _assert_nothing_left(st)
        # and the pool still serves all max_size connections
        armed["on"] = False
        conns = [await engine.connect() for _ in range(2)]
        for c in conns:
            assert (await c.exec_driver_sql("SELECT 1")).scalar() == 1
            await c.close()
        _assert_nothing_left(st)
    finally:
        event.remove(pool, "checkout", checkout)
        await close_engine(engine, timeout=2)
