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

On a path that runs for every query (the rollback at checkin, a pre-ping) even the
:class:`Deadline` object and the callback closure count. The keyed arm makes neither:
:meth:`Deadlines.enter` puts ``key`` (the connection) into a dict with its due instant,
:meth:`Deadlines.leave` takes it out and says whether it fired; when one is due the timer
calls the ``on_due(key)`` given to the constructor, once for the whole owner.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable, Hashable
from time import monotonic
from typing import Any

__all__ = ["Deadline", "Deadlines"]

logger = logging.getLogger("poolbridge.deadlines")

#: a keyed deadline's entry once its ``on_due`` ran (see Deadlines.enter)
_FIRED = float("-inf")


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
    """The deadlines of one owner (a pool) on ``loop`` (see the module docstring).

    ``on_due(key)`` is what a keyed deadline (:meth:`enter`) does when it is due; it is
    called on the loop and must not block.
    """

    __slots__ = ("_keyed", "_on_due", "_pending", "_timer", "_timer_at", "loop")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, on_due: Callable[[Any], object] | None = None
    ) -> None:
        self.loop = loop  # an attribute, not a property: hot paths compare it per operation
        self._on_due = on_due
        self._pending: collections.deque[Deadline] = collections.deque()
        self._keyed: dict[Hashable, float] = {}  # key -> due instant (monotonic) or _FIRED
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    def __len__(self) -> int:
        """Deadlines kept (armed and not yet dropped or left); for tests and diagnostics."""
        return len(self._pending) + len(self._keyed)

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

    def enter(self, key: Hashable, seconds: float) -> None:
        """Call ``on_due(key)`` in ``seconds`` unless :meth:`leave` (``key``) comes first.
        No Deadline object, no closure: a dict entry. One deadline per key at a time."""
        when = monotonic() + seconds
        self._keyed[key] = when
        if self._timer is None or when < self._timer_at:
            self._arm(when)

    def leave(self, key: Hashable) -> bool:
        """End ``key``'s deadline; True when it was due and ``on_due`` ran for it (the
        operation got no answer in time)."""
        return self._keyed.pop(key, 0.0) == _FIRED

    def close(self) -> None:
        """Cancel the timer; pending deadlines never fire."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pending.clear()
        self._keyed.clear()

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = self.loop.call_later(max(0.0, when - monotonic()), self._fire)

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
        keyed = self._keyed
        due_keys: list[Hashable] = []
        for key, when in keyed.items():
            if when == _FIRED:
                continue
            if when <= now:
                due_keys.append(key)
            elif earliest is None or when < earliest:
                earliest = when
        for key in due_keys:
            keyed[key] = _FIRED
        if earliest is not None:
            self._arm(earliest)
        for d in due:
            try:
                d.callback()
            except Exception:
                logger.exception("a deadline callback failed")
        on_due = self._on_due
        for key in due_keys:
            try:
                if on_due is not None:
                    on_due(key)
            except Exception:
                logger.exception("a deadline callback failed")
