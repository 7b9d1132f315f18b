"""A measurement-only engine without FIFO hand-off ("barging"), for benchmarks/instructions.py.

Not shipped: poolbridge's engine hands a released connection to the oldest waiter
(src/poolbridge/engine/checkout.py), so a task that releases and re-acquires at once queues
behind the waiters. This variant measures what that costs. It behaves like asyncmy's own
pool (``Pool.release`` appends to its free list and coalesces one ``call_soon`` wake-up
per loop iteration):

- a checkin always makes the connection idle, so the releasing task, re-acquiring in the
  same step, takes it straight back (``_take_idle()`` does not look at the waiters);
- when anyone waits, the checkin schedules one wake-up (at most one pending at a time);
  when it runs, each connection still idle at that moment goes to the oldest waiter
  (``WaiterQueue.hand``); a waiter is never woken without a connection.

Waiters are served FIFO among themselves, but only with connections nobody re-acquired
first: under steady contention they starve until the holders stop (as in asyncmy's pool).
"""

from __future__ import annotations

import asyncio
import dataclasses
from bisect import bisect_left
from collections.abc import Awaitable
from time import monotonic
from typing import Any

from poolbridge.engine.checkout import Engine
from poolbridge.engine.lifecycle import ConnRecord
from poolbridge.pool.stats import BUCKETS

__all__ = ["NoFifoEngine", "make_nofifo"]


class NoFifoEngine(Engine):
    """Engine whose checkin never hands a connection to a waiter directly."""

    _wake: asyncio.Handle | None = None

    def _give_back(self, c: ConnRecord) -> Awaitable[None] | None:
        # Engine._give_back with the hand-off replaced by "idle, then wake later"
        if not self._plain_checkin or c.broken or self.closed:
            return None
        t0 = c.checkout_at
        if t0 is None:
            return None
        now = monotonic()
        if now >= c.expires or not self._reusable(c.native):
            return None
        c.checkout_at = None
        held = now - t0
        rec = self.recorder
        if rec._listeners:
            rec.record_checkin(held)
        else:
            rec.used -= 1
            h = rec.use_time
            if held <= BUCKETS[0]:
                h.first += 1
            else:
                h.counts[bisect_left(BUCKETS, held)] += 1
            h.sum += held
        emit = self._emit_checkin
        if emit is not None:
            pending = emit(c.server_id, now - c.created, held, c.native)
            if pending is not None:
                return self._finish_checkin(c, pending)
        c.idle_since = now
        self._idle.append(c)
        if self._waiters and self._wake is None:
            self._wake = self._loop.call_soon(self._notify)  # type: ignore[union-attr]
        return self._done

    def _release(self, c: ConnRecord) -> None:
        if self.closed:
            self._retire(c)
            return
        c.idle_since = monotonic()
        self._idle.append(c)
        if self._waiters and self._wake is None and self._loop is not None:
            self._wake = self._loop.call_soon(self._notify)

    def _notify(self) -> None:
        """Give each connection idle now to the oldest waiter."""
        self._wake = None
        idle = self._idle
        while idle and self._waiters:
            c = idle.pop()
            if not self._queue.hand(c):
                idle.append(c)
                break


#: the variant's acquire_timeout: its waiters starve until the holders stop (the whole run),
#: which under valgrind on a loaded machine can outlast the stack's own acquire_timeout
STARVING_TIMEOUT = 3600.0


def make_nofifo(engine: Any) -> None:
    """Turn an open :class:`Engine` into a :class:`NoFifoEngine` (same state, same slots)
    whose waits are bounded by :data:`STARVING_TIMEOUT`."""
    assert type(engine) is Engine, type(engine)
    engine.__class__ = NoFifoEngine
    engine.config = dataclasses.replace(engine.config, acquire_timeout=STARVING_TIMEOUT)
    engine._queue._pass_on = engine._release  # a waiter leaving passes its grant on: idle
