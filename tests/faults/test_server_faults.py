"""Server-side faults: restart (embedded PostgreSQL), backends killed while idle and
mid-query (pg_terminate_backend / KILL), MariaDB wait_timeout shorter than the idle time.

After each fault: every caller succeeded or failed with a poolbridge / connection error within
its bound, the server never held more than max_size of the pool's connections, the pool
serves again without being reopened, a dead connection is not handed out twice, and the
server count returns to min_size..max_size in agreement with the pool's stats.
"""

from __future__ import annotations

import asyncio

import pytest

from poolbridge.testing.embedded import EmbeddedPostgres

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
    stacks,
    wait_healed,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.server, pytest.mark.timeout(30)]



async def _warm(probe: Probe, n: int) -> None:
    """Make the pool open ``n`` connections by holding them concurrently."""
    sleep = SLEEP[probe.stack.backend].format(s=0.2)
    await asyncio.gather(*(probe.query(sleep) for _ in range(n)))


@pytest.mark.parametrize("stack", stacks("postgresql"))
async def test_server_restart(stack: Stack, embedded_pg: EmbeddedPostgres) -> None:
    view = ServerView(embedded_pg.url, "postgresql")
    async with Probe(stack, embedded_pg.url) as probe:
        await _warm(probe, 3)
        await wait_healed(view, probe)
        await embedded_pg.astop("fast")
        bound = probe.cfg.acquire_timeout
        outcomes = await asyncio.gather(*(probe.call("SELECT 1", bound) for _ in range(6)))
        assert not any(o.ok for o in outcomes), "a query succeeded while the server was down"
        check_outcomes(stack, outcomes, bound)
        await embedded_pg.astart()
        await recover(probe, "SELECT 1", failures_allowed=probe.cfg.max_size)
        await wait_healed(view, probe)


@pytest.mark.parametrize("pre_ping", [True, False], ids=["pre_ping", "on_error"])
@pytest.mark.parametrize("stack", ALL_STACKS)
async def test_kill_idle(stack: Stack, pre_ping: bool, request: pytest.FixtureRequest) -> None:
    url, view = server_for(request, stack)
    async with Probe(stack, url, {"pre_ping": pre_ping}) as probe:
        await _warm(probe, 3)
        alive = await wait_healed(view, probe)
        assert await view.kill(alive) == len(alive)
        allowed = 0 if pre_ping else len(alive)
        await recover(probe, "SELECT 1", failures_allowed=allowed)
        healed = await wait_healed(view, probe)
        assert not healed & alive, "killed connections are still counted as the pool's"


@pytest.mark.parametrize("stack", ALL_STACKS)
async def test_kill_mid_query(stack: Stack, request: pytest.FixtureRequest) -> None:
    url, view = server_for(request, stack)
    async with Probe(stack, url) as probe:
        await wait_healed(view, probe)
        bound = 3.0
        sleep = SLEEP[stack.backend].format(s=8)
        callers = [asyncio.ensure_future(probe.call(sleep, bound)) for _ in range(3)]
        await asyncio.sleep(0.7)  # let the three queries reach the server
        await assert_within_max(view, probe)
        alive = await view.alive(probe.ids)
        await view.kill(alive)
        outcomes = await asyncio.gather(*callers)
        assert not any(o.ok for o in outcomes), "a killed query returned a result"
        check_outcomes(stack, outcomes, bound)
        await recover(probe, "SELECT 1", failures_allowed=probe.cfg.max_size)
        await wait_healed(view, probe)


@pytest.mark.parametrize("pre_ping", [True, False], ids=["pre_ping", "on_error"])
@pytest.mark.parametrize("stack", stacks("mysql"))
async def test_mysql_wait_timeout(
    stack: Stack, pre_ping: bool, request: pytest.FixtureRequest
) -> None:
    url, view = server_for(request, stack)
    opts = {"pre_ping": pre_ping, "session": {"wait_timeout": "1"}, "max_size": 3}
    async with Probe(stack, url, opts) as probe:
        # the fault must really be injected: the session setting reached the server
        assert int(await probe.query("SELECT @@SESSION.wait_timeout")) == 1
        await _warm(probe, 2)
        before = await view.alive(probe.ids)
        assert before
        await asyncio.sleep(1.8)  # idle longer than wait_timeout: the server closes them
        assert not await view.alive(before), "MariaDB did not apply wait_timeout"
        await recover(probe, "SELECT 1", failures_allowed=0 if pre_ping else 3)
        alive = await view.alive(probe.ids)
        assert 1 <= len(alive) <= probe.cfg.max_size
