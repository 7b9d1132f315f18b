"""One stats shape for every adapter.

:meth:`StatsRecorder.snapshot` returns a plain dict, typed as :data:`PoolStats`, whose keys
follow the OpenTelemetry database-client conventions (``db.client.connection.*`` without the
``db.client.`` prefix).
Counts come from poolbridge's own events, never from a native pool's counters.

========================================  ==================================================
key                                       meaning
========================================  ==================================================
``connection.count.idle``                 open connections waiting in the pool
``connection.count.used``                 connections checked out right now
``connection.max``                        ``max_size``
``connection.idle.min``                   ``min_size`` (connections kept open)
``connection.idle.max``                   most idle connections the pool keeps (``max_size``)
``connection.pending_requests``           callers waiting for a connection right now
``connection.timeouts``                   acquires that ended in ``PoolTimeout`` (total)
``connection.refused``                    acquires refused with ``TooManyRequests`` (total)
``connection.created``                    physical connections opened (total)
``connection.closed``                     physical connections closed (total)
``connection.errors``                     failed connection attempts (total)
``connection.retries``                    connection attempts retried after a failure (total)
``connection.hook_failures``              hook calls that raised (total)
``connection.create_time``                histogram: seconds to open a connection
``connection.wait_time``                  histogram: seconds a caller waited to acquire
``connection.use_time``                   histogram: seconds a connection was held
========================================  ==================================================

Each histogram is ``{"count": int, "sum": float, "buckets": {upper_bound: cumulative}}``
(:class:`HistogramSnapshot`) with upper bounds in seconds (``inf`` last), the shape Prometheus
and OTel exporters need.
"""

from __future__ import annotations

import logging
from bisect import bisect_left as _bisect_left
from collections.abc import Callable
from typing import Literal, TypedDict

__all__ = [
    "BUCKETS",
    "STAT_KEYS",
    "TIME_KEYS",
    "DurationListener",
    "Histogram",
    "HistogramSnapshot",
    "PoolStats",
    "StatsRecorder",
    "TimeKind",
]

logger = logging.getLogger("poolbridge.stats")

TimeKind = Literal["create_time", "wait_time", "use_time"]
#: the three durations a recorder measures, by the suffix of their stats key
TIME_KEYS: tuple[TimeKind, ...] = ("create_time", "wait_time", "use_time")

DurationListener = Callable[[TimeKind, float], None]
"""Told ``(kind, seconds)`` each time a duration is recorded (e.g. an OTel histogram feed)."""

BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    float("inf"),
)  # fmt: skip

STAT_KEYS: tuple[str, ...] = (
    "connection.count.idle",
    "connection.count.used",
    "connection.max",
    "connection.idle.min",
    "connection.idle.max",
    "connection.pending_requests",
    "connection.timeouts",
    "connection.refused",
    "connection.created",
    "connection.closed",
    "connection.errors",
    "connection.retries",
    "connection.hook_failures",
    "connection.create_time",
    "connection.wait_time",
    "connection.use_time",
)


class HistogramSnapshot(TypedDict):
    """One duration histogram of :data:`PoolStats` (seconds; cumulative buckets)."""

    count: int
    sum: float
    #: upper bound in seconds (``inf`` last) -> observations <= that bound
    buckets: dict[float, int]


# The keys are dotted names, which only the functional TypedDict syntax can spell.
PoolStats = TypedDict(
    "PoolStats",
    {
        "connection.count.idle": int,
        "connection.count.used": int,
        "connection.max": int,
        "connection.idle.min": int,
        "connection.idle.max": int,
        "connection.pending_requests": int,
        "connection.timeouts": int,
        "connection.refused": int,
        "connection.created": int,
        "connection.closed": int,
        "connection.errors": int,
        "connection.retries": int,
        "connection.hook_failures": int,
        "connection.create_time": HistogramSnapshot,
        "connection.wait_time": HistogramSnapshot,
        "connection.use_time": HistogramSnapshot,
    },
)
"""What ``Pool.stats()`` returns: every key of the table above, always present."""


class Histogram:
    """A fixed-bucket histogram of durations in seconds.

    Observing is one bucket increment and one float add (``count`` is the sum of the
    buckets, computed when read); the recorder and the engine's hot path do the same two
    steps in place. The first bucket (<= 0.5 ms: every checkout of an idle connection, most
    holds) is an integer field of its own, ``first``: its increment is a field update
    (an unboxed integer in the compiled build) rather than a list item's.
    """

    __slots__ = ("counts", "first", "sum")

    def __init__(self) -> None:
        self.first = 0  # observations in the first bucket (BUCKETS[0])
        self.counts = [0] * len(BUCKETS)  # per bucket from the second on (counts[0] unused)
        self.sum = 0.0

    @property
    def count(self) -> int:
        return self.first + sum(self.counts)

    def observe(self, seconds: float) -> None:
        if seconds <= _FIRST:
            self.first += 1
        else:
            self.counts[_bisect_left(BUCKETS, seconds)] += 1
        self.sum += seconds

    def snapshot(self) -> HistogramSnapshot:
        cumulative: dict[float, int] = {}
        running = self.first
        for bound, n in zip(BUCKETS, self.counts, strict=True):
            running += n
            cumulative[bound] = running
        return {"count": running, "sum": self.sum, "buckets": cumulative}


_FIRST = BUCKETS[0]


class StatsRecorder:
    """Counts what a pool does, from poolbridge's own events.

    Adapters call the ``record_*`` methods at the matching moments; ``snapshot()`` builds
    the documented dict. All methods are O(1) and allocation-free on the hot path.

    Exporters that need each duration as it happens (OpenTelemetry's synchronous
    histograms) subscribe with :meth:`add_listener`. With no listener the only cost is one
    truth test of an empty tuple per recorded duration.
    """

    __slots__ = (
        "_listeners",
        "closed",
        "create_time",
        "created",
        "errors",
        "hook_failures",
        "max_size",
        "min_size",
        "open",
        "pending",
        "refused",
        "retries",
        "timeouts",
        "use_time",
        "used",
        "wait_time",
    )

    def __init__(self, *, min_size: int, max_size: int) -> None:
        self.min_size = min_size
        self.max_size = max_size
        self.open = 0
        self.used = 0
        self.pending = 0
        self.timeouts = 0
        self.refused = 0
        self.created = 0
        self.closed = 0
        self.errors = 0
        self.retries = 0
        self.hook_failures = 0
        self.create_time = Histogram()
        self.wait_time = Histogram()
        self.use_time = Histogram()
        # a tuple, replaced on change: listeners can (un)subscribe while one is being called
        self._listeners: tuple[DurationListener, ...] = ()

    def add_listener(self, listener: DurationListener) -> None:
        """Call ``listener(kind, seconds)`` for every create/wait/use duration from now on."""
        self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: DurationListener) -> None:
        """Stop calling ``listener``; unknown listeners are ignored."""
        self._listeners = tuple(fn for fn in self._listeners if fn is not listener)

    def _notify(self, kind: TimeKind, seconds: float) -> None:
        # A listener is an exporter: its failure must never break a checkout or checkin.
        for fn in self._listeners:
            try:
                fn(kind, seconds)
            except Exception:
                logger.exception("stats listener %r failed on %s", fn, kind)

    def record_created(self, seconds: float) -> None:
        self.created += 1
        self.open += 1
        self.create_time.observe(seconds)
        if self._listeners:
            self._notify("create_time", seconds)

    def record_closed(self, *, was_used: bool = False) -> None:
        """A physical connection closed; ``was_used`` when it closed while checked out."""
        self.closed += 1
        self.open -= 1
        if was_used:
            self.used -= 1

    # record_checkout/record_checkin run on every acquire, so they update the histogram's
    # fields in place rather than call Histogram.observe (the call would be about a third of
    # their cost; benchmarks/hooks_overhead.py measures it), and the common sub-0.5 ms
    # duration skips the bisect.
    def record_checkout(self, wait_seconds: float) -> None:
        self.used += 1
        h = self.wait_time
        if wait_seconds <= _FIRST:
            h.first += 1
        else:
            h.counts[_bisect_left(BUCKETS, wait_seconds)] += 1
        h.sum += wait_seconds
        if self._listeners:
            self._notify("wait_time", wait_seconds)

    def record_checkin(self, use_seconds: float) -> None:
        self.used -= 1
        h = self.use_time
        if use_seconds <= _FIRST:
            h.first += 1
        else:
            h.counts[_bisect_left(BUCKETS, use_seconds)] += 1
        h.sum += use_seconds
        if self._listeners:
            self._notify("use_time", use_seconds)

    def record_timeout(self) -> None:
        self.timeouts += 1

    def record_refused(self) -> None:
        self.refused += 1

    def record_error(self) -> None:
        self.errors += 1

    def record_retry(self) -> None:
        self.retries += 1

    def snapshot(self) -> PoolStats:
        """The documented stats dict (see the module docstring)."""
        return {
            "connection.count.idle": self.open - self.used,
            "connection.count.used": self.used,
            "connection.max": self.max_size,
            "connection.idle.min": self.min_size,
            "connection.idle.max": self.max_size,
            "connection.pending_requests": self.pending,
            "connection.timeouts": self.timeouts,
            "connection.refused": self.refused,
            "connection.created": self.created,
            "connection.closed": self.closed,
            "connection.errors": self.errors,
            "connection.retries": self.retries,
            "connection.hook_failures": self.hook_failures,
            "connection.create_time": self.create_time.snapshot(),
            "connection.wait_time": self.wait_time.snapshot(),
            "connection.use_time": self.use_time.snapshot(),
        }
