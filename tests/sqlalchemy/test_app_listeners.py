"""An application's own SQLAlchemy pool listeners keep working on a poolbridge engine, in a
documented order (docs/hooks-stats-metrics.md): poolbridge's on_checkout before its
``checkout`` listener, on_checkin before its ``checkin`` listener, once per use each."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, text

from poolbridge import ConnectionEvent, Hooks
from poolbridge.adapters.sqlalchemy import close_engine, create_async_engine, warm_up

from .conftest import Target

pytestmark = pytest.mark.asyncio


async def test_application_listeners_run_after_poolbridge_hooks(target: Target) -> None:
    order: list[str] = []

    def hook_checkout(ev: ConnectionEvent) -> None:
        order.append("hook-checkout")

    def hook_checkin(ev: ConnectionEvent) -> None:
        order.append("hook-checkin")

    hooks = Hooks(on_checkout=hook_checkout, on_checkin=hook_checkin)
    engine = await warm_up(create_async_engine(target.config(min_size=1, max_size=2), hooks=hooks))
    pool = engine.sync_engine.pool

    def app_checkout(dbapi_conn: Any, rec: Any, proxy: Any) -> None:
        order.append("app-checkout")

    def app_checkin(dbapi_conn: Any, rec: Any) -> None:
        order.append("app-checkin")

    event.listen(pool, "checkout", app_checkout)
    event.listen(pool, "checkin", app_checkin)
    try:
        for _ in range(2):
            async with engine.connect() as conn:
                assert (await conn.execute(text("SELECT 1"))).scalar() == 1
        cycle = ["hook-checkout", "app-checkout", "hook-checkin", "app-checkin"]
        assert order == cycle * 2
    finally:
        await close_engine(engine)


async def test_application_disconnection_error_replaces_and_counts_once(target: Target) -> None:
    """The pessimistic-disconnect recipe (a checkout listener raising DisconnectionError)
    works as stock: SQLAlchemy replaces the connection; poolbridge counts one checkout."""
    from sqlalchemy import exc as sa_exc

    from poolbridge.adapters.sqlalchemy import engine_state

    engine = await warm_up(
        create_async_engine(target.config(min_size=0, max_size=2, leak_timeout=30))
    )
    refused: list[Any] = []

    def app_checkout(dbapi_conn: Any, rec: Any, proxy: Any) -> None:
        if not refused:
            refused.append(dbapi_conn)
            raise sa_exc.DisconnectionError("application says: gone")

    try:
        async with engine.connect() as conn:  # opens one, uses it: no refusal yet
            await conn.execute(text("SELECT 1"))
        event.listen(engine.sync_engine.pool, "checkout", app_checkout)
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
            assert conn.sync_connection is not None
            raw = (await conn.get_raw_connection()).dbapi_connection
            assert raw is not refused[0]  # replaced
        st = engine_state(engine)
        snap = st.recorder.snapshot()
        assert snap["connection.count.used"] == 0
        assert st.leaks is not None and st.leaks.open_count == 0
        assert len(st.live_ids) == 1
    finally:
        await close_engine(engine)
