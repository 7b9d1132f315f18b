"""OpenTelemetry exporter: ``db.client.connection.*`` instruments on an OTel Meter.

Usage::

    from poolbridge.metrics import otel
    otel.instrument(pool)                       # global MeterProvider
    otel.instrument(pool, meter_provider=mp)    # or an explicit one
    ...
    otel.uninstrument(pool)

Instruments (names, units and kinds from the OpenTelemetry database-client semantic
conventions); every data point has the attribute ``db.client.connection.pool.name``:

- ``db.client.connection.count`` (observable up-down counter, attribute
  ``db.client.connection.state=idle|used``): ``connection.count.idle`` / ``.used``
- ``db.client.connection.max``, ``.idle.max``, ``.idle.min``, ``.pending_requests``
  (observable up-down counters): the stats keys of the same names
- ``db.client.connection.timeouts`` (observable counter): ``connection.timeouts``
- ``db.client.connection.create_time``, ``.wait_time``, ``.use_time`` (synchronous
  histograms, unit ``s``): every duration as it is recorded

Observable instruments read ``pool.stats()`` when the reader collects. The histograms are
synchronous: each duration is recorded when it happens, through a listener on the pool's
:class:`~poolbridge.pool.stats.StatsRecorder`, so they only hold durations recorded after
``instrument()`` (the stats dict keeps the totals since the pool opened).

Needs the ``poolbridge[otel]`` extra (``opentelemetry-api``; an SDK or distro to export).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from poolbridge.metrics import MetricsNotAvailable, StatsSource
from poolbridge.pool.stats import BUCKETS, TIME_KEYS, DurationListener, TimeKind

try:
    from opentelemetry import metrics
    from opentelemetry.metrics import CallbackOptions, Histogram, MeterProvider, Observation
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MetricsNotAvailable(
        "poolbridge.metrics.otel needs opentelemetry-api: pip install 'poolbridge[otel]'"
    ) from exc

__all__ = ["POOL_NAME", "STATE", "PoolInstruments", "instrument", "uninstrument"]

POOL_NAME = "db.client.connection.pool.name"
STATE = "db.client.connection.state"
CONNECTIONS = "{connection}"

#: stats key -> (instrument name, unit, description), observed as up-down counters
UP_DOWN: dict[str, tuple[str, str, str]] = {
    "connection.max": (
        "db.client.connection.max",
        CONNECTIONS,
        "The maximum number of open connections allowed.",
    ),
    "connection.idle.max": (
        "db.client.connection.idle.max",
        CONNECTIONS,
        "The maximum number of idle open connections allowed.",
    ),
    "connection.idle.min": (
        "db.client.connection.idle.min",
        CONNECTIONS,
        "The minimum number of idle open connections allowed.",
    ),
    "connection.pending_requests": (
        "db.client.connection.pending_requests",
        "{request}",
        "The number of current pending requests for an open connection.",
    ),
}
HISTOGRAM_DOCS: dict[TimeKind, str] = {
    "create_time": "The time it took to create a new connection.",
    "wait_time": "The time it took to obtain an open connection from the pool.",
    "use_time": "The time between borrowing a connection and returning it to the pool.",
}
BOUNDARIES: tuple[float, ...] = tuple(b for b in BUCKETS if b != float("inf"))


@dataclass(frozen=True, slots=True)
class _Entry:
    pool: StatsSource
    attributes: dict[str, str]
    listener: DurationListener


class PoolInstruments:
    """The poolbridge instruments of one MeterProvider, observing any number of pools.

    One instance per provider (see :func:`instrument`): OTel instruments are created once
    per meter and their callbacks report one data point set per added pool.
    """

    def __init__(self, meter_provider: MeterProvider | None = None) -> None:
        from poolbridge import __version__

        meter = metrics.get_meter("poolbridge", __version__, meter_provider=meter_provider)
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        meter.create_observable_up_down_counter(
            "db.client.connection.count",
            callbacks=[self._observe_count],
            unit=CONNECTIONS,
            description="The number of connections that are currently in state described by "
            "the `state` attribute.",
        )
        for key, (name, unit, doc) in UP_DOWN.items():
            meter.create_observable_up_down_counter(
                name, callbacks=[self._observer(key)], unit=unit, description=doc
            )
        meter.create_observable_counter(
            "db.client.connection.timeouts",
            callbacks=[self._observer("connection.timeouts")],
            unit="{timeout}",
            description="The number of connection timeouts that have occurred trying to "
            "obtain a connection from the pool.",
        )
        self._histograms: dict[TimeKind, Histogram] = {
            kind: meter.create_histogram(
                f"db.client.connection.{kind}",
                unit="s",
                description=HISTOGRAM_DOCS[kind],
                explicit_bucket_boundaries_advisory=BOUNDARIES,
            )
            for kind in TIME_KEYS
        }

    # -- pools ------------------------------------------------------------------------
    def add(self, pool: StatsSource) -> None:
        """Observe ``pool``; ValueError if another pool with the same name is observed."""
        attributes = {POOL_NAME: pool.name}
        histograms = self._histograms

        def listener(kind: TimeKind, seconds: float) -> None:
            histograms[kind].record(seconds, attributes)

        with self._lock:
            other = self._entries.get(pool.name)
            if other is not None:
                if other.pool is pool:
                    return
                raise ValueError(
                    f"a pool named {pool.name!r} is already instrumented on this meter "
                    "provider: give each pool a unique PoolConfig.name"
                )
            self._entries[pool.name] = _Entry(pool, attributes, listener)
        pool.recorder.add_listener(listener)

    def remove(self, pool: StatsSource) -> None:
        """Stop observing ``pool`` (no error if it was not added)."""
        with self._lock:
            entry = self._entries.get(pool.name)
            if entry is None or entry.pool is not pool:
                return
            del self._entries[pool.name]
        pool.recorder.remove_listener(entry.listener)

    def pools(self) -> list[StatsSource]:
        with self._lock:
            return [e.pool for e in self._entries.values()]

    # -- callbacks --------------------------------------------------------------------
    def _snapshot(self) -> list[tuple[Mapping[str, Any], dict[str, str]]]:
        with self._lock:
            entries = list(self._entries.values())
        return [(e.pool.stats(), e.attributes) for e in entries]

    def _observe_count(self, options: CallbackOptions) -> Iterable[Observation]:
        out = []
        for stats, attributes in self._snapshot():
            for state in ("idle", "used"):
                out.append(
                    Observation(stats[f"connection.count.{state}"], {**attributes, STATE: state})
                )
        return out

    def _observer(self, key: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(stats[key], attributes) for stats, attributes in self._snapshot()]

        return observe


_by_provider: weakref.WeakKeyDictionary[Any, PoolInstruments] = weakref.WeakKeyDictionary()
_by_provider_lock = threading.Lock()


def instruments_for(meter_provider: MeterProvider | None = None) -> PoolInstruments:
    """The (cached) poolbridge instruments of ``meter_provider`` (default: the global one)."""
    provider = metrics.get_meter_provider() if meter_provider is None else meter_provider
    with _by_provider_lock:
        found = _by_provider.get(provider)
        if found is None:
            found = PoolInstruments(provider)
            _by_provider[provider] = found
        return found


def instrument(
    pool: StatsSource, *, meter_provider: MeterProvider | None = None
) -> PoolInstruments:
    """Report ``pool`` through the ``db.client.connection.*`` instruments of the provider."""
    found = instruments_for(meter_provider)
    found.add(pool)
    return found


def uninstrument(pool: StatsSource, *, meter_provider: MeterProvider | None = None) -> None:
    """Stop reporting ``pool`` through ``meter_provider`` (default: the global one)."""
    provider = metrics.get_meter_provider() if meter_provider is None else meter_provider
    with _by_provider_lock:
        found = _by_provider.get(provider)
    if found is not None:
        found.remove(pool)
