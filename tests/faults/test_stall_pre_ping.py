"""pre_ping and the rollback at checkin on a stalled link (no byte flows, no error comes),
on every adapter x driver.

A connection is pooled and used once (so the next checkout pings it), then the proxy
stalls. The ping must not outlast the caller's acquire deadline: the caller gets
PoolTimeout within about acquire_timeout (new connections cannot be opened either), or a
fresh connection if the link heals meanwhile; the stalled connection is discarded, never
handed out again, and once healed the server holds min_size..max_size of the pool's
connections, as the pool's stats say.

Engine-backed stacks (the raw drivers, Tortoise on asyncpg/MySQL, peewee-async on
aiopg/aiomysql) bound the ping in the engine (tests/engine/test_stall_bounds.py covers it
there in detail); SQLAlchemy's pool class and the psycopg_pool subclass bound their own.
No statement_timeout here: its client-side backstop would cut the ping too and hide a
pre-ping that waits forever.

SQLAlchemy's bounds arm no loop timer while the operation answers in time: with a bound
longer than three maintenance intervals, the maintenance ticks arm it once the operation
has been under way for a tick (adapters/sqlalchemy/_events.py, ``_Bounds``). With the
default max_idle (interval 1 s) the 1 s bounds here are armed at once; the ``ticked``
variants give SQLAlchemy a short max_idle (interval 50 ms), so the same stalls go through
the ticks and must still be cut in time.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from poolbridge.errors import PoolTimeout
from poolbridge.testing.servers.proxy import TcpProxy

from ._harness import (
    ALL_STACKS,
    Probe,
    ServerView,
    Stack,
    acceptable_error,
    assert_within_max,
    recover,
    server_for,
    wait_healed,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.server, pytest.mark.timeout(40)]

ACQUIRE_TIMEOUT = 2.0
#: SQLAlchemy's maintenance ticking every 50 ms (a quarter of max_idle): bounds of 1 s wait
#: for the ticks to arm their timer
TICKED = {"max_idle": 0.2}
SQLALCHEMY_STACKS = [p for p in ALL_STACKS if p.values[0].adapter == "sqlalchemy"]
CONNECT_TIMEOUT = 1.0
#: scheduling slack on a 2-core machine shared with other test runs
MARGIN = 1.5
SERVER_ID = {"postgresql": "SELECT pg_backend_pid()", "mysql": "SELECT CONNECTION_ID()"}


def _options(**extra: object) -> dict[str, object]:
    opts: dict[str, object] = {
        "min_size": 1,
        "max_size": 2,
        "pre_ping": True,
        "acquire_timeout": ACQUIRE_TIMEOUT,
        "connect_timeout": CONNECT_TIMEOUT,
    }
    opts.update(extra)
    return opts


async def _pooled_id(probe: Probe) -> int:
    """Use the pool's one connection (so it is not fresh any more) and return its server id."""
    sid = int(await probe.query(SERVER_ID[probe.stack.backend]))
    assert int(await probe.query(SERVER_ID[probe.stack.backend])) == sid
    return sid


async def _gone(view: ServerView, sid: int, stack: Stack, timeout: float = 5.0) -> None:
    """The server connection ``sid`` ends (its client side was cut, the proxy follows)."""
    deadline = time.monotonic() + timeout
    while sid in await view.alive([sid]):
        assert time.monotonic() < deadline, (
            f"{stack.id}: stalled connection {sid} still open on the server {timeout:.0f} s "
            "after heal: it was kept, not discarded"
        )
        await asyncio.sleep(0.1)


def _assert_ticked(probe: Probe) -> None:
    """SQLAlchemy's bounds of CONNECT_TIMEOUT go through the maintenance ticks."""
    from poolbridge.adapters.sqlalchemy import engine_state
    from poolbridge.adapters.sqlalchemy._events import _TICKS_AHEAD

    ticking = engine_state(probe.pool.native).ticking
    assert ticking is not None and _TICKS_AHEAD * ticking.interval < CONNECT_TIMEOUT


@pytest.mark.parametrize("stack", ALL_STACKS)
async def test_pre_ping_on_stalled_link_raises_pool_timeout_in_time(
    stack: Stack, request: pytest.FixtureRequest
) -> None:
    await _pre_ping_stall(stack, request)


@pytest.mark.parametrize("stack", SQLALCHEMY_STACKS)
async def test_pre_ping_on_stalled_link_raises_pool_timeout_in_time_ticked(
    stack: Stack, request: pytest.FixtureRequest
) -> None:
    await _pre_ping_stall(stack, request, **TICKED)


async def _pre_ping_stall(stack: Stack, request: pytest.FixtureRequest, **extra: object) -> None:
    url, view = server_for(request, stack)
    port = 5432 if stack.backend == "postgresql" else 3306
    async with (
        TcpProxy("127.0.0.1", port) as proxy,
        Probe(stack, proxy.url_for(url), _options(**extra)) as probe,
    ):
        await wait_healed(view, probe)
        if extra:
            _assert_ticked(probe)
        sid = await _pooled_id(probe)
        proxy.stall()
        outcome = await probe.call("SELECT 1", ACQUIRE_TIMEOUT + MARGIN)
        assert not outcome.ok, f"{stack.id}: a query succeeded through a stalled link"
        assert isinstance(outcome.error, PoolTimeout), (
            f"{stack.id}: expected PoolTimeout, got {type(outcome.error).__name__}: {outcome.error}"
        )
        assert outcome.elapsed < ACQUIRE_TIMEOUT + MARGIN, (
            f"{stack.id}: acquire took {outcome.elapsed:.2f} s on a stalled link "
            f"(acquire_timeout={ACQUIRE_TIMEOUT})"
        )
        await assert_within_max(view, probe)
        await proxy.heal()
        await recover(probe, "SELECT 1", failures_allowed=0)
        await _gone(view, sid, stack)
        await wait_healed(view, probe)


@pytest.mark.parametrize("stack", ALL_STACKS)
async def test_pre_ping_stall_heals_while_caller_waits(
    stack: Stack, request: pytest.FixtureRequest
) -> None:
    """The link heals while the caller waits: the ping gave up at connect_timeout, the
    stalled connection was dropped and the caller gets a new one within its deadline."""
    url, view = server_for(request, stack)
    port = 5432 if stack.backend == "postgresql" else 3306
    timeout = 4.0
    async with (
        TcpProxy("127.0.0.1", port) as proxy,
        Probe(stack, proxy.url_for(url), _options(acquire_timeout=timeout)) as probe,
    ):
        await wait_healed(view, probe)
        sid = await _pooled_id(probe)
        proxy.stall(CONNECT_TIMEOUT * 1.3)  # heals itself after the ping gave up
        outcome = await probe.call(SERVER_ID[stack.backend], timeout + MARGIN)
        assert outcome.ok, (
            f"{stack.id}: no connection after the link healed: "
            f"{type(outcome.error).__name__}: {outcome.error}"
        )
        assert int(outcome.value) != sid, f"{stack.id}: the stalled connection was handed out"
        assert outcome.elapsed < timeout, f"{stack.id}: acquire took {outcome.elapsed:.2f} s"
        await _gone(view, sid, stack)
        await wait_healed(view, probe)


@pytest.mark.parametrize("stack", ALL_STACKS)
async def test_checkin_rollback_on_stalled_link_is_bounded(
    stack: Stack, request: pytest.FixtureRequest
) -> None:
    """Giving back a connection with a transaction open while the link is stalled: the
    rollback at checkin must end (by connect_timeout, as the engine bounds it), not wait for
    an answer that cannot come; once healed the pool serves again."""
    await _rollback_stall(stack, request)


@pytest.mark.parametrize("stack", SQLALCHEMY_STACKS)
async def test_checkin_rollback_on_stalled_link_is_bounded_ticked(
    stack: Stack, request: pytest.FixtureRequest
) -> None:
    await _rollback_stall(stack, request, **TICKED)


async def _rollback_stall(stack: Stack, request: pytest.FixtureRequest, **extra: object) -> None:
    url, view = server_for(request, stack)
    port = 5432 if stack.backend == "postgresql" else 3306
    async with (
        TcpProxy("127.0.0.1", port) as proxy,
        Probe(stack, proxy.url_for(url), _options(pre_ping=False, **extra)) as probe,
    ):
        await wait_healed(view, probe)
        if extra:
            _assert_ticked(probe)
        t0 = 0.0

        async def block() -> None:
            nonlocal t0
            async with probe.pool.acquire() as conn:
                await probe.impl.fetch_scalar(conn, "BEGIN")
                assert await probe.impl.fetch_scalar(conn, "SELECT 1") == 1
                proxy.stall()
                t0 = time.monotonic()

        task = asyncio.ensure_future(block())
        try:
            done, _ = await asyncio.wait([task], timeout=CONNECT_TIMEOUT + 2 * MARGIN)
            elapsed = time.monotonic() - t0
            assert done, f"{stack.id}: checkin still running {elapsed:.1f} s after the stall"
            assert elapsed < CONNECT_TIMEOUT + MARGIN, f"{stack.id}: checkin took {elapsed:.2f} s"
            error = task.exception()  # a cut connection may fail the block's exit: acceptably
            assert error is None or acceptable_error(error), f"{stack.id}: {error!r}"
        finally:
            await proxy.heal()  # a hung rollback gets its answer now: the teardown stays quick
            await asyncio.wait([task], timeout=10)
        await recover(probe, "SELECT 1", failures_allowed=probe.cfg.max_size)
        await wait_healed(view, probe)
