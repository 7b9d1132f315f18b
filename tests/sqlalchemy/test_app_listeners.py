"""An application's own SQLAlchemy pool listeners keep working on a poolbridge engine, in a
documented order (docs/hooks-stats-metrics.md): its ``checkout`` listener before
poolbridge's on_checkout, its ``checkin`` listener before on_checkin, once per use each."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, text

from poolbridge import ConnectionEvent, Hooks
from poolbridge.adapters.sqlalchemy import close_engine, create_async_engine

from .conftest import Target

pytestmark = pytest.mark.asyncio


async def test_application_listeners_run_before_poolbridge_hooks(target: Target) -> None:
    order: list[str] = []

    def hook_checkout(ev: ConnectionEvent) -> None:
        order.append("hook-checkout")

    def hook_checkin(ev: ConnectionEvent) -> None:
        order.append("hook-checkin")

    hooks = Hooks(on_checkout=hook_checkout, on_checkin=hook_checkin)
    engine = await create_async_engine(target.config(min_size=1, max_size=2), hooks=hooks)
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
        cycle = ["app-checkout", "hook-checkout", "app-checkin", "hook-checkin"]
        assert order == cycle * 2
    finally:
        await close_engine(engine)
