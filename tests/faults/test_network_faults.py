"""Network faults through an in-process TCP proxy (loopback only) between pool and server:
every connection dropped, bytes stalled, new connections refused — then healed.

The server-side views go straight to the server (not through the proxy), and identify the
pool's connections by the server ids its on_connect hook recorded.
"""

from __future__ import annotations

import asyncio

import pytest

from poolbridge.testing.proxy import TcpProxy

from ._harness import (
    ALL_STACKS,
    Probe,
    ServerView,
    Stack,
    check_outcomes,
    recover,
    server_for,
    wait_healed,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.server, pytest.mark.timeout(30)]

def _server(request: pytest.FixtureRequest, stack: Stack) -> tuple[str, ServerView, TcpProxy]:
    """The server's URL, its view, and an unstarted proxy in front of it."""
    url, view = server_for(request, stack)
    port = 5432 if stack.backend == "postgresql" else 3306
    return url, view, TcpProxy("127.0.0.1", port)


@pytest.mark.parametrize("stack", ALL_STACKS)
async def test_proxy_drop(stack: Stack, request: pytest.FixtureRequest) -> None:
    url, view, proxy = _server(request, stack)
    async with proxy, Probe(stack, proxy.url_for(url)) as probe:
        alive = await wait_healed(view, probe)
        assert proxy.drop() >= len(alive)
        await recover(probe, "SELECT 1", failures_allowed=probe.cfg.max_size)
        healed = await wait_healed(view, probe)
        assert not healed & alive


@pytest.mark.parametrize("stack", ALL_STACKS)
async def test_proxy_stall_then_heal(stack: Stack, request: pytest.FixtureRequest) -> None:
    """No byte flows: statement_timeout bounds callers on open connections, connect_timeout
    (within acquire_timeout) bounds callers that need a new one."""
    url, view, proxy = _server(request, stack)
    opts = {"statement_timeout": 0.5, "connect_timeout": 1.0, "acquire_timeout": 1.5}
    async with proxy, Probe(stack, proxy.url_for(url), opts) as probe:
        await wait_healed(view, probe)
        proxy.stall()
        bound = probe.cfg.acquire_timeout + 1.0  # statement_timeout after a prompt acquire
        outcomes = await asyncio.gather(*(probe.call("SELECT 1", bound) for _ in range(6)))
        assert not any(o.ok for o in outcomes), "a query succeeded through a stalled link"
        check_outcomes(stack, outcomes, bound)
        await proxy.heal()
        await recover(probe, "SELECT 1", failures_allowed=probe.cfg.max_size)
        await wait_healed(view, probe)


@pytest.mark.parametrize("stack", ALL_STACKS)
async def test_proxy_refuse_then_heal(stack: Stack, request: pytest.FixtureRequest) -> None:
    url, view, proxy = _server(request, stack)
    async with proxy, Probe(stack, proxy.url_for(url)) as probe:
        await wait_healed(view, probe)
        await proxy.refuse()
        proxy.drop()
        bound = probe.cfg.acquire_timeout
        outcomes = await asyncio.gather(*(probe.call("SELECT 1", bound) for _ in range(6)))
        assert not any(o.ok for o in outcomes), "a query succeeded while connections refused"
        check_outcomes(stack, outcomes, bound)
        await proxy.heal()
        await recover(probe, "SELECT 1", failures_allowed=probe.cfg.max_size)
        await wait_healed(view, probe)
