"""The long cancellation storm (``make soak``): 10,000 callers cancelled at random points of
acquire / query / release. The 1,000-caller storm and exhaustion under a slow query are
conformance rows (``cancel_storm``, ``exhaustion_slow``), run for every column by
``tests/test_conformance.py``; this runs the same checks
(:meth:`poolbridge.testing.servers.faults.FaultPool.storm` / ``after_storm``) ten times longer.
"""

from __future__ import annotations

import pytest

from ._harness import ALL_STACKS, SLEEP, Probe, Stack, server_for

pytestmark = [pytest.mark.asyncio, pytest.mark.server]


@pytest.mark.soak
@pytest.mark.timeout(120)
@pytest.mark.parametrize("stack", ALL_STACKS)
async def test_cancellation_storm_soak(stack: Stack, request: pytest.FixtureRequest) -> None:
    url, view = server_for(request, stack)
    async with Probe(stack, url, {"acquire_timeout": 5.0}) as probe:
        fp = probe.faults(view)
        await fp.storm(SLEEP[stack.backend].format(s=0.005), tasks=10_000, window=15.0)
        await fp.after_storm()
