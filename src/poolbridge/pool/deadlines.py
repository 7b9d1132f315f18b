"""Many short-lived deadlines on one event loop for the price of one timer (stdlib only).

Bounding every rollback or ping in time (a stalled link never answers) with
``loop.call_later(limit, cut)`` + ``handle.cancel()`` costs ~20k CPU instructions per
operation in CPython 3.11 (a TimerHandle, a heap push and pop with Python-level
comparisons, the cancellation bookkeeping): 3 % of a whole SQLAlchemy query on the
checkout/checkin hot path. Nearly every such deadline is cancelled long before it is due,
so :class:`Deadlines` keeps them in a FIFO and one loop timer armed for the earliest:

- :meth:`Deadlines.arm` appends a :class:`Deadline` (and arms the timer only when none is
  armed or this deadline is earlier than the armed one);
- :meth:`Deadline.cancel` only marks it done; finished deadlines are dropped from the front
  of the FIFO on the next :meth:`~Deadlines.arm` (operations mostly end in the order they
  started) or when the timer fires;
- the timer calls the callback of every deadline that is due and re-arms for the earliest
  one left.

With a constant bound (``connect_timeout``) deadlines are appended in order, so the timer
fires about once per bound, not once per operation.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from time import monotonic

__all__ = ["Deadline", "Deadlines"]

logger = logging.getLogger("poolbridge.deadlines")


class Deadline:
    """One armed deadline; :meth:`cancel` it when the operation ends. ``fired`` says whether
    its callback ran (the operation got no answer in time)."""

    __slots__ = ("callback", "done", "fired", "when")

    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self.when = when
        self.callback = callback
        self.done = False
        self.fired = False

    def cancel(self) -> None:
        self.done = True


class Deadlines:
    """The deadlines of one owner (a pool) on ``loop`` (see the module docstring)."""

    __slots__ = ("_loop", "_pending", "_timer", "_timer_at")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._pending: collections.deque[Deadline] = collections.deque()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def __len__(self) -> int:
        """Deadlines kept (armed and not yet dropped); for tests and diagnostics."""
        return len(self._pending)

    def arm(self, seconds: float, callback: Callable[[], object]) -> Deadline:
        """Call ``callback`` (on the loop, it must not block) in ``seconds`` unless the
        returned deadline is cancelled first."""
        d = Deadline(monotonic() + seconds, callback)
        pending = self._pending
        while pending and pending[0].done:
            pending.popleft()
        pending.append(d)
        if self._timer is None or d.when < self._timer_at:
            self._arm(d.when)
        return d

    def close(self) -> None:
        """Cancel the timer; pending deadlines never fire."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pending.clear()

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = self._loop.call_later(max(0.0, when - monotonic()), self._fire)

    def _fire(self) -> None:
        self._timer = None
        now = monotonic()
        due: list[Deadline] = []
        keep: collections.deque[Deadline] = collections.deque()
        earliest: float | None = None
        for d in self._pending:
            if d.done:
                continue
            if d.when <= now:
                d.done = d.fired = True
                due.append(d)
            else:
                keep.append(d)
                if earliest is None or d.when < earliest:
                    earliest = d.when
        self._pending = keep
        if earliest is not None:
            self._arm(earliest)
        for d in due:
            try:
                d.callback()
            except Exception:
                logger.exception("a deadline callback failed")
