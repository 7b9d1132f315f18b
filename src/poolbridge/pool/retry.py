"""Connection-establishment retry: capped exponential backoff with jitter.

The policy comes from ``config.retry`` (:class:`poolbridge.config.model.RetryPolicy`):
``attempts`` counts the first try, the sleep before retry *n* (n >= 1) is
``min(max_backoff, initial_backoff * 2 ** (n - 1))`` scaled by a random factor in
``[1 - jitter, 1 + jitter]``. The whole sequence is bounded by a deadline (the caller's
acquire deadline): an attempt never gets more time than remains, a sleep never runs past
the deadline, and when no time is left the last error is raised. Each retry is logged and
counted through ``StatsRecorder.record_retry()``; each failed attempt through
``record_error()``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from time import monotonic
from typing import TypeVar

from poolbridge.config.model import RetryPolicy
from poolbridge.pool.stats import StatsRecorder

__all__ = ["backoff_delay", "connect_with_retry"]

logger = logging.getLogger("poolbridge.engine")

T = TypeVar("T")


def backoff_delay(policy: RetryPolicy, retry_number: int) -> float:
    """Seconds to sleep before retry ``retry_number`` (1 = the first retry), jitter applied."""
    base = float(min(policy.max_backoff, policy.initial_backoff * 2.0 ** (retry_number - 1)))
    if policy.jitter:
        base *= random.uniform(1.0 - policy.jitter, 1.0 + policy.jitter)
    return max(0.0, base)


async def connect_with_retry(
    attempt: Callable[[float], Awaitable[T]],
    *,
    policy: RetryPolicy,
    connect_timeout: float,
    deadline: float,
    recorder: StatsRecorder,
    pool_name: str,
    is_retryable: Callable[[BaseException], bool] | None = None,
) -> T:
    """Call ``attempt(timeout)`` until it succeeds, ``policy.attempts`` are used up or the
    ``deadline`` (a ``time.monotonic()`` value) passes; then raise the last error.

    ``attempt`` receives the seconds it may take (``min(connect_timeout, remaining)``) and is
    additionally bounded by ``asyncio.timeout`` so a driver that ignores its own timeout
    cannot overrun. ``is_retryable`` may veto retrying an error (e.g. bad credentials): the
    engine passes its driver shim's verdict (:mod:`poolbridge.drivers.connect_errors`), so a
    wrong password is one failed login, not ``policy.attempts`` of them.
    """
    attempts = max(1, policy.attempts)
    last: BaseException | None = None
    for n in range(attempts):
        if n:
            delay = backoff_delay(policy, n)
            remaining = deadline - monotonic()
            if remaining <= delay:
                break
            recorder.record_retry()
            logger.warning(
                "pool %r: connection attempt %d/%d failed (%s: %s); retrying in %.3f s",
                pool_name, n, attempts, type(last).__name__, last, delay,
            )  # fmt: skip
            await asyncio.sleep(delay)
        timeout = min(connect_timeout, deadline - monotonic())
        if timeout <= 0:
            break
        try:
            async with asyncio.timeout(timeout):
                return await attempt(timeout)
        except Exception as exc:
            recorder.record_error()
            last = exc
            if is_retryable is not None and not is_retryable(exc):
                break
    if last is None:
        raise TimeoutError(f"pool {pool_name!r}: no time left to open a connection")
    raise last
