"""Periodic work on event loops without a timer in their heap: one ticker thread per process.

Why: while any timer is scheduled in an asyncio loop (``loop.call_later``, a pending
``asyncio.sleep``), every iteration of the loop computes a select timeout from it (one
more ``loop.time()``, ``min``/``max``, the selector's rounding): ~2k CPU instructions per
iteration, 5..7k per query at 1 task (docs/performance.md). A pool's maintenance runs
every fraction of a second for the pool's whole life, so a sleeping maintenance task
would make a busy loop pay that on every iteration. Here one daemon thread keeps the
schedule of every open pool instead and, when one is due, posts its callback to that
pool's loop with ``loop.call_soon_threadsafe`` (public API of asyncio and uvloop): the
loop sees one wake-up per interval and never a timer.

    tick = schedule(loop, interval, callback)   # callback() runs on ``loop`` every interval
    tick.cancel()                               # when the pool closes

- **Weak.** The ticker holds each :class:`Tick` weakly; its owner (the pool) holds it. An
  abandoned pool is not kept alive by its schedule: once it is collected, the thread
  drops the dead entry at its next wake-up.
- **At most one post pending per tick.** A tick whose previous post has not run yet (the
  loop is blocked, or stopped) is not posted again: nothing piles up in a loop that does
  not run. The next due time is counted from the moment the tick was due (the loop's
  own latency adds to it, as it did after ``asyncio.sleep``).
- **A closed loop** makes ``call_soon_threadsafe`` raise RuntimeError: the tick is
  dropped (the thread neither crashes nor spins).
- **Idle costs nothing.** With no tick registered the thread waits on its condition
  without a timeout; it is started by the first :func:`schedule` and stays (a daemon:
  interpreter exit never waits for it).
- **Fork.** The thread does not exist in a child process: an ``os.register_at_fork``
  hook gives the child a fresh, empty ticker (the parent's ticks are forgotten there, as
  the parent's pools are unusable there), and the child's first :func:`schedule` starts
  its own thread.

Core module: standard library only.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import threading
import weakref
from collections.abc import Callable
from time import monotonic

__all__ = ["Tick", "Ticker", "schedule", "ticker"]

logger = logging.getLogger("poolbridge.ticker")

#: a tick due within this many seconds counts as due now (a condition wait may return a
#: hair early; re-waiting for microseconds would only cost another wake-up)
_SLACK = 0.001

_INF = float("inf")


class Tick:
    """One registration: ``callback()`` runs on ``loop`` every ``interval`` seconds until
    :meth:`cancel` (see the module docstring)."""

    __slots__ = ("__weakref__", "_callback", "_due", "_key", "_pending", "_ticker", "cancelled",
                 "interval", "loop")  # fmt: skip

    def __init__(
        self,
        ticker: Ticker,
        key: int,
        loop: asyncio.AbstractEventLoop,
        interval: float,
        callback: Callable[[], object],
    ) -> None:
        self._ticker = ticker
        self._key = key
        self.loop = loop
        self.interval = interval
        self._callback = callback
        self._due = monotonic() + interval
        # posted to the loop and not run yet (set by the thread, cleared on the loop)
        self._pending = False
        self.cancelled = False

    def cancel(self) -> None:
        """Stop the schedule (idempotent); a post already queued in the loop does nothing."""
        if not self.cancelled:
            self.cancelled = True
            self._ticker._remove(self)

    def _run(self) -> None:
        """On the loop: the posted call."""
        self._pending = False
        if not self.cancelled:
            self._callback()

    def __repr__(self) -> str:
        state = "cancelled" if self.cancelled else f"every {self.interval:g}s"
        return f"<Tick {state} loop={type(self.loop).__name__}@{id(self.loop):#x}>"


class Ticker:
    """The schedule of every tick of one process and the thread that runs it."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._ticks: dict[int, weakref.ref[Tick]] = {}
        self._keys = itertools.count()
        self._thread: threading.Thread | None = None
        #: set in a forked child on the parent's ticker, whose lock may have been copied
        #: held: nothing may wait on it there
        self.forked = False
        #: how many times the thread looked at the schedule (a test can see it sleep)
        self.wakeups = 0

    def schedule(
        self, loop: asyncio.AbstractEventLoop, interval: float, callback: Callable[[], object]
    ) -> Tick:
        """Run ``callback()`` on ``loop`` every ``interval`` seconds (the first time one
        interval from now); keep the returned :class:`Tick` (the ticker holds it weakly)
        and :meth:`Tick.cancel` it when done."""
        if not interval > 0:
            raise ValueError(f"interval must be positive, got {interval!r}")
        with self._cond:
            key = next(self._keys)
            tick = Tick(self, key, loop, interval, callback)
            self._ticks[key] = weakref.ref(tick)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="poolbridge-ticker", daemon=True
                )
                self._thread.start()
            self._cond.notify()  # it may be due before the thread's current wake-up
        return tick

    def _remove(self, tick: Tick) -> None:
        if self.forked:
            return
        with self._cond:
            if self._ticks.pop(tick._key, None) is not None:
                self._cond.notify()  # the last one gone: wait without a timeout

    def __len__(self) -> int:
        """Live registrations (dead weak references are dropped by the thread)."""
        with self._cond:
            return sum(1 for ref in self._ticks.values() if ref() is not None)

    @property
    def thread(self) -> threading.Thread | None:
        """The ticker's thread (None until the first :meth:`schedule`)."""
        return self._thread

    def _due(self) -> list[Tick]:
        """Under the lock: the ticks to post now (each marked pending, its next due time
        set), after waiting until one is due."""
        while True:
            self.wakeups += 1
            now = monotonic()
            earliest = _INF
            due: list[Tick] = []
            for key, ref in list(self._ticks.items()):
                tick = ref()
                if tick is None or tick.cancelled:
                    del self._ticks[key]
                    continue
                if tick._due <= now + _SLACK:
                    if not tick._pending:  # the previous post has not run: skip this one
                        tick._pending = True
                        due.append(tick)
                    tick._due = now + tick.interval
                if tick._due < earliest:
                    earliest = tick._due
            if due:
                return due
            tick = None  # no reference kept while waiting: an abandoned tick is collectable
            if earliest == _INF:
                self._cond.wait()  # nothing scheduled: sleep until schedule() notifies
            else:
                self._cond.wait(earliest - now)

    def _run(self) -> None:
        """The thread: post each due tick to its loop, for ever."""
        while True:
            with self._cond:
                due = self._due()
            self._post(due)
            # no reference kept while waiting: an abandoned tick must be collectable
            del due

    @staticmethod
    def _post(due: list[Tick]) -> None:
        """Outside the lock (posting takes the loop's own machinery): ``call_soon_threadsafe``
        each tick's run on its loop; a tick whose loop refuses is dropped."""
        for tick in due:
            try:
                tick.loop.call_soon_threadsafe(tick._run)
            except RuntimeError:  # the loop is closed: nobody will run it again
                logger.debug("ticker: dropping %r (its loop is closed)", tick)
                tick.cancel()
            except Exception:  # never let one bad loop stop every pool's maintenance
                logger.exception("ticker: posting %r failed; dropped", tick)
                tick.cancel()


_TICKER = Ticker()


def ticker() -> Ticker:
    """This process's ticker."""
    return _TICKER


def schedule(
    loop: asyncio.AbstractEventLoop, interval: float, callback: Callable[[], object]
) -> Tick:
    """:meth:`Ticker.schedule` on this process's ticker."""
    return _TICKER.schedule(loop, interval, callback)


def _after_fork_in_child() -> None:
    """The parent's thread does not exist here: start over with an empty ticker."""
    global _TICKER
    _TICKER.forked = True
    _TICKER = Ticker()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
