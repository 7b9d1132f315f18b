"""Every documented close path terminates and releases, on every backend.

``pool.close()``, SQLAlchemy's ``close_engine()`` and ``engine.dispose()``, Tortoise's
``Tortoise.close_connections()``, peewee-async's ``aio_close()`` and the FastAPI lifespan:
after each, the server holds none of the connections the pool's ``on_connect`` recorded
(pg_stat_activity / PROCESSLIST ids), no task of the pool is left running, and
``asyncio.run()`` returns. Each scenario runs in ``asyncio.run()`` on a thread of its own,
joined with a timeout: a close that leaves a task behind (or hangs) fails the test instead
of hanging it.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Awaitable, Callable
from time import monotonic
from typing import Any

import pytest

from poolbridge import ConnectionEvent, Hooks, PoolConfig, RetryPolicy

from ._stacks import STACKS, URL_FIXTURE, Server, Stack

#: seconds one scenario may take, close included
BOUND = 30.0
#: seconds the server and the loop get to show the close (a MariaDB thread ends a moment
#: after its client hung up)
SETTLE = 3.0

#: a scenario opens, uses and closes; it may return a cleanup that runs after the checks
#: (whatever their outcome), so a failing close path leaves nothing behind in the process
Cleanup = Callable[[], Awaitable[None]]
Scenario = Callable[[PoolConfig, Hooks], Awaitable[Cleanup | None]]


def _stacks(adapter: str | None = None) -> list[Any]:
    return [pytest.param(s, id=s.id) for s in STACKS if adapter is None or s.adapter == adapter]


def _config(stack: Stack, url: str) -> PoolConfig:
    return PoolConfig(
        url=url,
        driver=stack.driver,
        min_size=2,
        max_size=4,
        acquire_timeout=5.0,
        max_idle=None,
        retry=RetryPolicy(attempts=2, initial_backoff=0.01, max_backoff=0.05),
        name=f"pb-close-{uuid.uuid4().hex[:8]}",
    )


async def _leftover_tasks() -> set[asyncio.Task[Any]]:
    """Tasks other than this one still running after up to SETTLE seconds."""
    me = asyncio.current_task()
    until = monotonic() + SETTLE
    while True:
        others = {t for t in asyncio.all_tasks() if t is not me and not t.done()}
        if not others or monotonic() >= until:
            return others
        await asyncio.sleep(0.02)


async def _scenario(stack: Stack, url: str, body: Scenario) -> None:
    ids: set[Any] = set()

    def record(ev: ConnectionEvent) -> None:
        ids.add(ev.connection_id)

    cleanup = await body(_config(stack, url), Hooks(on_connect=record))
    try:
        if stack.backend != "sqlite":
            assert ids, "the pool recorded no connection: nothing was checked"
        leftover = await _leftover_tasks()
        assert not leftover, f"tasks still running after close: {leftover}"
        async with Server(stack, url) as server:
            until = monotonic() + SETTLE
            while await server.alive(ids) and monotonic() < until:
                await asyncio.sleep(0.05)
            assert await server.alive(ids) == set(), "server connections left after close"
    finally:
        if cleanup is not None:
            await cleanup()


def run_bounded(stack: Stack, url: str, body: Scenario) -> None:
    """``asyncio.run(scenario)`` on a daemon thread; fail if it has not returned in BOUND s."""
    outcome: list[BaseException | None] = []

    def main() -> None:
        try:
            asyncio.run(_scenario(stack, url, body))
        except BaseException as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=main, name=f"close-path-{stack.id}", daemon=True)
    thread.start()
    thread.join(BOUND)
    if thread.is_alive():
        pytest.fail(f"asyncio.run() did not return within {BOUND} s: the close path hangs")
    assert outcome, "the scenario thread ended without an outcome"
    if outcome[0] is not None:
        raise outcome[0]


def _url(stack: Stack, request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(URL_FIXTURE[stack.backend])
    return url


# -- the uniform handle, on every stack ---------------------------------------------------


@pytest.mark.parametrize("stack", _stacks())
def test_pool_close(stack: Stack, request: pytest.FixtureRequest) -> None:
    from poolbridge import open_pool
    from poolbridge.adapters.registry import get_adapter

    async def body(cfg: PoolConfig, hooks: Hooks) -> Cleanup | None:
        pool = await open_pool(cfg, adapter=stack.adapter, hooks=hooks)
        async with pool.acquire() as conn:
            assert await get_adapter(stack.adapter).fetch_scalar(conn, "SELECT 1") == 1
        await pool.close()
        assert pool.closed
        return None

    run_bounded(stack, _url(stack, request), body)


@pytest.mark.parametrize("stack", _stacks())
def test_fastapi_lifespan(stack: Stack, request: pytest.FixtureRequest) -> None:
    pytest.importorskip("fastapi")
    from poolbridge.integrations.fastapi import PoolBridge

    async def body(cfg: PoolConfig, hooks: Hooks) -> Cleanup | None:
        bridge = PoolBridge(cfg, adapter=stack.adapter, hooks=hooks, close_timeout=5.0)
        async with bridge.lifespan(None), bridge.pool.acquire():
            pass
        with pytest.raises(RuntimeError):
            bridge.pool  # noqa: B018 - closed: no pool outside the lifespan
        return None

    run_bounded(stack, _url(stack, request), body)


# -- SQLAlchemy ---------------------------------------------------------------------------


async def _use_engine(engine: Any) -> None:
    from sqlalchemy import text

    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT 1"))).scalar() == 1


@pytest.mark.parametrize("stack", _stacks("sqlalchemy"))
def test_sqlalchemy_close_engine(stack: Stack, request: pytest.FixtureRequest) -> None:
    from poolbridge.adapters.sqlalchemy import close_engine, create_async_engine, warm_up

    async def body(cfg: PoolConfig, hooks: Hooks) -> Cleanup | None:
        engine = await warm_up(create_async_engine(cfg, hooks=hooks))
        await _use_engine(engine)
        await close_engine(engine)
        return None

    run_bounded(stack, _url(stack, request), body)


@pytest.mark.parametrize("stack", _stacks("sqlalchemy"))
def test_sqlalchemy_engine_dispose(stack: Stack, request: pytest.FixtureRequest) -> None:
    from poolbridge.adapters.sqlalchemy import close_engine, create_async_engine, warm_up

    async def body(cfg: PoolConfig, hooks: Hooks) -> Cleanup | None:
        engine = await warm_up(create_async_engine(cfg, hooks=hooks))
        await _use_engine(engine)
        await engine.dispose()
        return lambda: close_engine(engine, 0)

    run_bounded(stack, _url(stack, request), body)


# -- Tortoise -----------------------------------------------------------------------------


@pytest.mark.parametrize("stack", _stacks("tortoise"))
def test_tortoise_close_connections(stack: Stack, request: pytest.FixtureRequest) -> None:
    from poolbridge.adapters.tortoise import init

    async def body(cfg: PoolConfig, hooks: Hooks) -> Cleanup | None:
        from tortoise import Tortoise, connections

        await init(cfg, {"models": ["tests.tortoise.models_tortoise"]}, hooks=hooks)
        conn = connections.get("default")
        assert (await conn.execute_query_dict("SELECT 1 AS one"))[0]["one"] == 1
        await Tortoise.close_connections()
        return None

    run_bounded(stack, _url(stack, request), body)


# -- peewee-async -------------------------------------------------------------------------


@pytest.mark.parametrize("stack", _stacks("peewee_async"))
def test_peewee_aio_close(stack: Stack, request: pytest.FixtureRequest) -> None:
    from poolbridge.adapters.peewee_async import database

    async def body(cfg: PoolConfig, hooks: Hooks) -> Cleanup | None:
        db = database(cfg, hooks=hooks)
        await db.aio_connect()
        async with db.aio_connection() as conn, conn.cursor() as cur:
            await cur.execute("SELECT 1")
            assert (await cur.fetchone())[0] == 1
        await db.aio_close()
        return None

    run_bounded(stack, _url(stack, request), body)
