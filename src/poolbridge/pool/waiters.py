"""The waiter queue of a pool: FIFO hand-off, bounded waits, one deadline timer (stdlib only).

Both pools poolbridge implements itself queue their callers here: the engine
(:mod:`poolbridge.engine.checkout`, a grant is a connection record) and SQLAlchemy's
``BridgePool`` (a grant is a pool record, or ``None``: "a slot is yours, open a
connection"). What a grant is stays the owner's business (``WaiterQueue[T]``); how
callers queue, are served, time out and leave is written once, here:

- **FIFO hand-off.** A waiter is a bare future in a deque. :meth:`WaiterQueue.hand` gives
  a grant to the oldest waiter still waiting (``set_result``); nothing passes through the
  owner's idle list while anyone waits, so a task that releases and re-acquires at once
  queues behind the waiters.
- **Bounded waits, one timer.** Each waiter has a deadline. One loop timer per queue,
  armed for the earliest deadline, wakes every waiter whose deadline passed with
  :class:`WaitExpired` (the owner turns it into its own PoolTimeout, with its own
  diagnostics) and re-arms for the earliest deadline left; it is cancelled when no
  deadline is left. A ``call_later`` + ``cancel`` per wait would cost more than the rest
  of the wait together (at 100 tasks on 10 connections every checkout waits).
- **max_waiting.** :meth:`~WaiterQueue.join` (or :meth:`~WaiterQueue.check_room` alone)
  refuses a caller beyond it (TooManyRequests, counted as refused), once per caller.
- **Leaving.** A waiter whose wait ends without its grant being used (expired, cancelled,
  refused at close) calls :meth:`~WaiterQueue.abandon`: it leaves the queue, and a grant
  it was handed meanwhile goes to the owner's ``pass_on`` (the next waiter, or the idle
  list): nothing is lost, nothing is handed twice.

The owner awaits the future itself (``await fut`` on the loop, ``await_(fut)`` inside
SQLAlchemy's greenlet): no ``asyncio.wait``/``wait_for`` wrapper, no extra coroutine. A pool's
fast path may test the deque (:attr:`WaiterQueue.waiters`) before calling :meth:`hand`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable
from time import monotonic
from typing import Generic, TypeVar

from poolbridge.errors import TooManyRequests
from poolbridge.pool.stats import StatsRecorder

__all__ = ["WaitExpired", "WaiterQueue"]

T = TypeVar("T")

#: the loop's clock may round a hair below a deadline: the timer counts a deadline due
#: this much early rather than re-arm for a few microseconds
_CLOCK_SLACK = 0.0005

_INF = float("inf")


class WaitExpired(Exception):
    """Set on a waiter's future by the queue's timer: its deadline passed."""


class WaiterQueue(Generic[T]):
    """The callers waiting for a grant of one pool (see the module docstring).

    ``name`` and ``max_waiting`` are the pool's (0: unbounded); ``recorder`` counts refused
    callers and keeps the ``pending`` gauge; ``pass_on(grant)`` is the owner's hand-off,
    called with a grant whose waiter left without using it.
    """

    __slots__ = (
        "_deadlines",
        "_loop",
        "_max_waiting",
        "_name",
        "_pass_on",
        "_recorder",
        "_timer",
        "_timer_at",
        "waiters",
    )  # fmt: skip

    def __init__(
        self,
        name: str,
        max_waiting: int,
        recorder: StatsRecorder,
        pass_on: Callable[[T], object],
    ) -> None:
        #: the waiting futures, oldest first (a fast path may test it before hand())
        self.waiters: collections.deque[asyncio.Future[T]] = collections.deque()
        self._deadlines: dict[asyncio.Future[T], float] = {}  # waiter -> monotonic deadline
        self._timer: asyncio.TimerHandle | None = None  # fires at the earliest deadline
        self._timer_at = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._name = name
        self._max_waiting = max_waiting
        self._recorder = recorder
        self._pass_on = pass_on

    def __len__(self) -> int:
        return len(self.waiters)

    @property
    def armed(self) -> bool:
        """Whether the deadline timer is armed (for tests and diagnostics)."""
        return self._timer is not None

    @property
    def deadlines(self) -> int:
        """Waits in progress whose deadline is kept (for tests and diagnostics)."""
        return len(self._deadlines)

    def last_deadline(self) -> float:
        """The latest deadline of the waits in progress (0.0 when nobody waits): how long a
        connect started for them may run."""
        return max(self._deadlines.values(), default=0.0)

    # -- joining and leaving -----------------------------------------------------------
    def check_room(self) -> None:
        """TooManyRequests (counted as refused) when ``max_waiting`` callers already wait."""
        maxw = self._max_waiting
        n = len(self.waiters)
        if maxw and n >= maxw:
            self._recorder.record_refused()
            raise TooManyRequests(
                f"pool {self._name!r}: {n} callers already wait (max_waiting={maxw})"
            )

    def join(
        self, loop: asyncio.AbstractEventLoop, deadline: float, *, admitted: bool = False
    ) -> asyncio.Future[T]:
        """Queue a caller until ``deadline`` (monotonic) after :meth:`check_room` (skipped
        for a caller ``admitted`` already, queueing again); the owner awaits the future,
        uses the grant it resolves to, and calls :meth:`abandon` when the await raised
        (expired, cancelled, refused)."""
        if not admitted:
            maxw = self._max_waiting
            if maxw and len(self.waiters) >= maxw:
                self.check_room()
        fut: asyncio.Future[T] = loop.create_future()
        self.waiters.append(fut)
        self._deadlines[fut] = deadline
        if self._timer is None or deadline < self._timer_at:
            self._arm(loop, deadline)
        self._recorder.pending += 1
        return fut

    def _settled(self, fut: asyncio.Future[T]) -> None:
        """``fut`` is no longer waiting: off the books (pending gauge, deadline; the timer
        stops when no deadline is left)."""
        self._recorder.pending -= 1
        deadlines = self._deadlines
        del deadlines[fut]
        if not deadlines and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def abandon(self, fut: asyncio.Future[T]) -> None:
        """The waiter leaves without using a grant (expired, cancelled, refused): off the
        queue; a grant it was handed meanwhile goes to ``pass_on``."""
        if fut in self._deadlines:  # cancelled while waiting
            self._settled(fut)
        if fut.done():
            if fut.cancelled():
                queued = True  # cancelled while waiting: maybe still queued
            else:
                error = fut.exception()  # retrieved: never logged as unretrieved
                if error is None:
                    self._pass_on(fut.result())  # handed to us, but we leave
                    return
                queued = isinstance(error, WaitExpired)  # the timer leaves it queued
        else:
            fut.cancel()
            queued = True
        if queued:
            with contextlib.suppress(ValueError):  # already popped (skipped) by a hand-off
                self.waiters.remove(fut)

    # -- serving -----------------------------------------------------------------------
    def hand(self, grant: T) -> bool:
        """Give ``grant`` to the oldest waiter still waiting; False when nobody waits (the
        owner keeps it: idle list, free slot)."""
        waiters = self.waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(grant)
                # off the books, as _settled() (written out: one call per hand-off, which
                # at 100 tasks on 10 connections happens on every checkin)
                self._recorder.pending -= 1
                deadlines = self._deadlines
                del deadlines[fut]
                if not deadlines and self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
                return True
        return False

    def fail_oldest(self, error: BaseException) -> bool:
        """Raise ``error`` in the oldest waiter still waiting (a connect failed: a failing
        server must never wedge the queue); False when nobody waits."""
        waiters = self.waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_exception(error)
                self._settled(fut)
                return True
        return False

    def close(self, error: Callable[[], BaseException]) -> None:
        """The pool closes: stop the timer, raise ``error()`` in every waiter."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiters = self.waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_exception(error())
        self._recorder.pending -= len(self._deadlines)
        self._deadlines.clear()

    # -- the deadline timer ------------------------------------------------------------
    def _arm(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._loop = loop
        self._timer_at = deadline
        self._timer = loop.call_later(max(0.0, deadline - monotonic()), self._fire)

    def _fire(self) -> None:
        """Wake every waiter whose deadline passed; re-arm for the earliest one left."""
        self._timer = None
        now = monotonic() + _CLOCK_SLACK
        earliest = _INF
        deadlines = self._deadlines
        due = [fut for fut, deadline in deadlines.items() if deadline <= now]
        for fut in due:  # still queued: hand() skips it, abandon() takes it out
            del deadlines[fut]
            self._recorder.pending -= 1
            if not fut.done():
                fut.set_exception(WaitExpired())
        for deadline in deadlines.values():
            if deadline < earliest:
                earliest = deadline
        loop = self._loop
        if earliest != _INF and loop is not None and not loop.is_closed():
            self._arm(loop, earliest)
