"""Random acquire/cancel storms shared by the fake-driver and real-driver engine tests."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

from poolbridge.engine.checkout import Engine

Use = Callable[[Any, random.Random], Awaitable[None]]


async def cancel_storm(
    engine: Engine,
    cycles: int,
    *,
    seed: int,
    concurrency: int = 12,
    use: Use | None = None,
    max_delay_steps: int = 12,
) -> dict[str, int]:
    """Run ``cycles`` acquire/use/release tasks, cancelling most at a random loop step.

    Returns outcome counts. Raises AssertionError if a connection is ever held by two
    tasks at once; any error other than cancellation is re-raised.
    """
    rng = random.Random(seed)
    held: set[int] = set()
    outcomes = {"ok": 0, "cancelled": 0}

    async def user() -> None:
        async with engine.acquire() as conn:
            key = id(conn)
            assert key not in held, f"connection {conn!r} handed to two tasks at once"
            held.add(key)
            try:
                for _ in range(rng.randint(0, 3)):
                    await asyncio.sleep(0)
                if use is not None:
                    await use(conn, rng)
            finally:
                held.discard(key)

    async def cancel_after(task: asyncio.Task[None], steps: int) -> None:
        for _ in range(steps):
            await asyncio.sleep(0)
        task.cancel()

    done = 0
    while done < cycles:
        n = min(concurrency, cycles - done)
        tasks = [asyncio.create_task(user()) for _ in range(n)]
        cancellers = [
            asyncio.create_task(cancel_after(t, rng.randint(0, max_delay_steps)))
            for t in tasks
            if rng.random() < 0.8
        ]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*cancellers)
        for r in results:
            if isinstance(r, asyncio.CancelledError):
                outcomes["cancelled"] += 1
            elif isinstance(r, BaseException):
                raise r
            else:
                outcomes["ok"] += 1
        done += n
    return outcomes


def assert_accounted(engine: Engine) -> None:
    """Every connection is idle in the pool or closed; counts agree with the stats."""
    stats = engine.recorder
    assert stats.used == 0, f"{stats.used} connections still counted as in use"
    assert stats.pending == 0
    assert engine.waiting == 0
    assert engine.idle_count == len(engine.server_ids()), "an open connection is not idle"
    assert stats.open == len(engine.server_ids())
    assert engine.config.min_size <= len(engine.server_ids()) <= engine.config.max_size


async def settle(engine: Engine, timeout: float = 10.0) -> None:
    """Wait until background opens/closes are done and min_size is refilled."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while engine._opening or engine._closing or len(engine.server_ids()) < engine.config.min_size:
        if loop.time() > end:
            raise AssertionError(f"engine did not settle: {engine!r}")
        await asyncio.sleep(0.01)
