"""Prometheus exporter: a ``prometheus_client`` collector, one labelled series per pool.

Usage::

    from poolbridge.metrics import prometheus
    prometheus.register(pool)            # into prometheus_client.REGISTRY
    ...
    prometheus.unregister(pool)          # e.g. at shutdown

Every series carries the labels ``pool`` (``PoolConfig.name``) and ``adapter``. The values
are read from ``pool.stats()`` at scrape time, so a scrape costs nothing between scrapes
and always agrees with the stats dict:

- ``poolbridge_connection_count{state="idle"|"used"}`` (gauge): ``connection.count.idle``
  / ``connection.count.used``
- ``poolbridge_connection_max``, ``_idle_min``, ``_idle_max``, ``_pending_requests``
  (gauges): ``connection.max``, ``connection.idle.min``, ...
- ``poolbridge_connection_{timeouts,refused,created,closed,errors,retries,hook_failures}_total``
  (counters): the stats totals of the same names
- ``poolbridge_connection_{create,wait,use}_time_seconds`` (histograms with ``_bucket``,
  ``_sum`` and ``_count``): the stats histograms (buckets are cumulative, ``+Inf`` last)

Requires the ``poolbridge[prometheus]`` extra.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Iterator, Mapping
from typing import Any

from poolbridge.metrics import MetricsNotAvailable, StatsSource

try:
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MetricsNotAvailable(
        "poolbridge.metrics.prometheus needs prometheus_client: "
        "pip install 'poolbridge[prometheus]'"
    ) from exc

__all__ = ["PoolCollector", "collector_for", "register", "unregister"]

LABELS = ("pool", "adapter")

#: stats key -> (metric suffix, help text)
GAUGES: dict[str, tuple[str, str]] = {
    "connection.max": ("connection_max", "Maximum number of open connections allowed."),
    "connection.idle.min": ("connection_idle_min", "Minimum number of idle connections kept."),
    "connection.idle.max": ("connection_idle_max", "Maximum number of idle connections kept."),
    "connection.pending_requests": (
        "connection_pending_requests",
        "Callers waiting for a connection right now.",
    ),
}
COUNTERS: dict[str, tuple[str, str]] = {
    "connection.timeouts": ("connection_timeouts", "Acquires that ended in PoolTimeout."),
    "connection.refused": ("connection_refused", "Acquires refused with TooManyRequests."),
    "connection.created": ("connection_created", "Physical connections opened."),
    "connection.closed": ("connection_closed", "Physical connections closed."),
    "connection.errors": ("connection_errors", "Failed connection attempts."),
    "connection.retries": ("connection_retries", "Connection attempts retried."),
    "connection.hook_failures": ("connection_hook_failures", "Hook calls that raised."),
}
HISTOGRAMS: dict[str, tuple[str, str]] = {
    "connection.create_time": (
        "connection_create_time_seconds",
        "Seconds it took to open a new connection.",
    ),
    "connection.wait_time": (
        "connection_wait_time_seconds",
        "Seconds a caller waited to acquire a connection.",
    ),
    "connection.use_time": (
        "connection_use_time_seconds",
        "Seconds between checking a connection out and giving it back.",
    ),
}


def _le(bound: float) -> str:
    # the ``le`` label as prometheus_client writes it: "0.005", "1.0", "+Inf"
    return "+Inf" if math.isinf(bound) else repr(float(bound))


class PoolCollector:
    """A custom collector exporting the stats of every pool added to it.

    Pools are read at scrape time (``collect()`` may run in the HTTP server's thread: it
    only reads the stats dict). A pool stays exported until :meth:`remove` — also after it
    is closed, so its final totals can still be scraped.
    """

    def __init__(self, namespace: str = "poolbridge") -> None:
        self.namespace = namespace
        self._lock = threading.Lock()
        self._pools: dict[tuple[str, str], StatsSource] = {}

    def add(self, pool: StatsSource) -> None:
        """Export ``pool``; ValueError if another pool already uses its (name, adapter)."""
        key = (pool.name, pool.adapter)
        with self._lock:
            other = self._pools.get(key)
            if other is not None and other is not pool:
                raise ValueError(
                    f"a pool named {pool.name!r} (adapter {pool.adapter!r}) is already "
                    "exported by this collector: give each pool a unique PoolConfig.name"
                )
            self._pools[key] = pool

    def remove(self, pool: StatsSource) -> None:
        """Stop exporting ``pool`` (no error if it was not added)."""
        key = (pool.name, pool.adapter)
        with self._lock:
            if self._pools.get(key) is pool:
                del self._pools[key]

    def pools(self) -> list[StatsSource]:
        with self._lock:
            return list(self._pools.values())

    def _families(
        self,
    ) -> tuple[
        GaugeMetricFamily,
        dict[str, GaugeMetricFamily],
        dict[str, CounterMetricFamily],
        dict[str, HistogramMetricFamily],
    ]:
        ns = self.namespace
        count = GaugeMetricFamily(
            f"{ns}_connection_count",
            "Open connections by state (idle: in the pool, used: checked out).",
            labels=[*LABELS, "state"],
        )
        gauges = {
            k: GaugeMetricFamily(f"{ns}_{name}", doc, labels=LABELS)
            for k, (name, doc) in GAUGES.items()
        }
        counters = {
            k: CounterMetricFamily(f"{ns}_{name}", doc, labels=LABELS)
            for k, (name, doc) in COUNTERS.items()
        }
        histograms = {
            k: HistogramMetricFamily(f"{ns}_{name}", doc, labels=LABELS)
            for k, (name, doc) in HISTOGRAMS.items()
        }
        return count, gauges, counters, histograms

    def describe(self) -> Iterator[Metric]:
        """The metric families without samples (lets a registry detect name clashes)."""
        count, gauges, counters, histograms = self._families()
        yield count
        yield from gauges.values()
        yield from counters.values()
        yield from histograms.values()

    def collect(self) -> Iterator[Metric]:
        """One sample set per exported pool, read from ``pool.stats()`` now."""
        count, gauges, counters, histograms = self._families()
        for pool in self.pools():
            # read by the key names in GAUGES/COUNTERS/HISTOGRAMS, so as a plain mapping
            stats: Mapping[str, Any] = pool.stats()
            labels = [pool.name, pool.adapter]
            count.add_metric([*labels, "idle"], stats["connection.count.idle"])
            count.add_metric([*labels, "used"], stats["connection.count.used"])
            for key, gauge in gauges.items():
                gauge.add_metric(labels, stats[key])
            for key, counter in counters.items():
                counter.add_metric(labels, stats[key])
            for key, histogram in histograms.items():
                hist = stats[key]
                buckets = [(_le(bound), n) for bound, n in hist["buckets"].items()]
                histogram.add_metric(labels, buckets, sum_value=hist["sum"])
        yield count
        yield from gauges.values()
        yield from counters.values()
        yield from histograms.values()


_collectors: weakref.WeakKeyDictionary[CollectorRegistry, PoolCollector] = (
    weakref.WeakKeyDictionary()
)
_collectors_lock = threading.Lock()


def collector_for(registry: CollectorRegistry | None = None) -> PoolCollector:
    """The poolbridge collector of ``registry`` (default: the global REGISTRY).

    Created and registered on first use, then reused: one collector per registry, so
    that any number of pools can be added without clashing metric names.
    """
    reg = REGISTRY if registry is None else registry
    with _collectors_lock:
        collector = _collectors.get(reg)
        if collector is None:
            collector = PoolCollector()
            reg.register(collector)
            _collectors[reg] = collector
        return collector


def register(pool: StatsSource, registry: CollectorRegistry | None = None) -> PoolCollector:
    """Export ``pool``'s stats through ``registry`` (default REGISTRY); returns the collector."""
    collector = collector_for(registry)
    collector.add(pool)
    return collector


def unregister(pool: StatsSource, registry: CollectorRegistry | None = None) -> None:
    """Stop exporting ``pool`` through ``registry`` (default REGISTRY)."""
    reg = REGISTRY if registry is None else registry
    with _collectors_lock:
        collector = _collectors.get(reg)
    if collector is not None:
        collector.remove(pool)
