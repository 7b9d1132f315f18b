"""``engine.dispose()`` keeps SQLAlchemy's meaning on a poolbridge engine: the pool's
connections are closed, a later use opens a fresh pool (listeners, hooks and stats carried
over), nothing refills eagerly and no task is left running, so ``asyncio.run()`` returns."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import uuid

import pytest
from sqlalchemy import event

from poolbridge.adapters.sqlalchemy import close_engine, create_async_engine, engine_state, warm_up
from poolbridge.pool.hooks import Hooks

from .conftest import Target, eventually

pytestmark = pytest.mark.asyncio

_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    from poolbridge.config.model import PoolConfig
    from poolbridge.adapters.sqlalchemy import create_async_engine, engine_state, warm_up

    async def main():
        config = PoolConfig(url=sys.argv[1], driver=sys.argv[2], name=sys.argv[3],
                            min_size=2, max_size=4)
        engine = await warm_up(create_async_engine(config))
        async with engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")
        await engine.dispose()
        async with engine.connect() as conn:  # a later use opens a fresh pool
            await conn.exec_driver_sql("SELECT 1")
        await engine.dispose()
        return engine_state(engine).recorded_ids

    ids = asyncio.run(main())
    print(json.dumps([str(i) for i in ids]))
    """
)


def _run_bounded(t: Target, name: str) -> list[str]:
    env = dict(os.environ)
    src = os.path.join(os.path.dirname(__file__), "..", "..", "src")
    env["PYTHONPATH"] = os.path.abspath(src) + os.pathsep + env.get("PYTHONPATH", "")
    try:
        done = subprocess.run(
            [sys.executable, "-c", _SCRIPT, t.url, t.driver, name],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"asyncio.run() did not return after engine.dispose(): {exc.stderr!r}")
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


async def test_asyncio_run_returns_after_dispose(target: Target) -> None:
    t = target
    ids = await asyncio.to_thread(_run_bounded, t, f"pbdispose-{uuid.uuid4().hex[:8]}")
    assert len(ids) >= 3  # min_size=2 at create, one fresh connection after the dispose
    if t.server is not None:
        live = t.server.live

        async def none_left() -> bool:
            return not await live(ids)

        assert await eventually(none_left, timeout=5), await live(ids)


async def test_dispose_closes_and_does_not_refill(target: Target) -> None:
    checkouts: list[object] = []
    engine = await warm_up(
        create_async_engine(
            target.config(min_size=2, max_size=3), hooks=Hooks(on_checkout=checkouts.append)
        )
    )
    listened: list[object] = []
    event.listen(engine.sync_engine.pool, "checkout", lambda *a: listened.append(a))
    st = engine_state(engine)
    try:
        first = list(st.recorded_ids)
        assert len(first) == 2
        await engine.dispose()
        assert engine_state(engine) is st
        await asyncio.sleep(0.3)
        assert not st.live_ids  # closed, and not refilled eagerly
        assert len(st.recorded_ids) == 2
        if target.server is not None:
            assert not await target.server.live(first)
        async with engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")
        # the application's listener and poolbridge's hooks survive the new pool
        assert len(listened) == 1 and len(checkouts) == 1

        async def refilled() -> bool:
            return len(st.live_ids) == 2

        assert await eventually(refilled)  # min_size again, after the first use
        snap = st.recorder.snapshot()
        assert snap["connection.closed"] == 2 and snap["connection.created"] == 4
    finally:
        await close_engine(engine)
