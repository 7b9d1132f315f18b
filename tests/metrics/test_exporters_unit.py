"""Exporters against a recorder-driven stats source (no server): shapes, names, errors."""

from __future__ import annotations

import builtins
import importlib
import sys
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from poolbridge.metrics import MetricsNotAvailable, otel, prometheus
from poolbridge.pool.stats import BUCKETS

from ._fakes import RecorderPool


def scrape(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def drive(pool: RecorderPool) -> None:
    rec = pool.recorder
    rec.record_created(0.003)
    rec.record_created(0.2)
    rec.record_checkout(0.0001)
    rec.record_checkout(0.07)
    rec.record_checkin(0.02)
    rec.record_timeout()
    rec.record_refused()
    rec.record_error()
    rec.record_retry()
    rec.record_closed()
    rec.pending = 3


def test_prometheus_series_match_stats() -> None:
    registry = CollectorRegistry()
    pool = RecorderPool("orders", "asyncpg")
    drive(pool)
    prometheus.register(pool, registry)
    got = scrape(registry)
    stats = pool.stats()
    lab = (("adapter", "asyncpg"), ("pool", "orders"))

    def v(name: str, **extra: str) -> float:
        return got[(name, tuple(sorted((*lab, *extra.items()))))]

    assert v("poolbridge_connection_count", state="idle") == stats["connection.count.idle"] == 0
    assert v("poolbridge_connection_count", state="used") == stats["connection.count.used"] == 1
    assert v("poolbridge_connection_max") == 4
    assert v("poolbridge_connection_idle_min") == 1
    assert v("poolbridge_connection_pending_requests") == 3
    assert v("poolbridge_connection_timeouts_total") == 1
    assert v("poolbridge_connection_refused_total") == 1
    assert v("poolbridge_connection_created_total") == 2
    assert v("poolbridge_connection_closed_total") == 1
    assert v("poolbridge_connection_errors_total") == 1
    assert v("poolbridge_connection_retries_total") == 1
    assert v("poolbridge_connection_hook_failures_total") == 0
    for key, metric in [
        ("connection.create_time", "poolbridge_connection_create_time_seconds"),
        ("connection.wait_time", "poolbridge_connection_wait_time_seconds"),
        ("connection.use_time", "poolbridge_connection_use_time_seconds"),
    ]:
        hist = stats[key]
        assert v(f"{metric}_count") == hist["count"]
        assert v(f"{metric}_sum") == pytest.approx(hist["sum"])
        assert v(f"{metric}_bucket", le="+Inf") == hist["count"]
        for bound in BUCKETS[:-1]:
            assert v(f"{metric}_bucket", le=repr(bound)) == hist["buckets"][bound]
    # 0.003 lands in le=0.005, 0.2 in le=0.25: cumulative buckets
    assert v("poolbridge_connection_create_time_seconds_bucket", le="0.0025") == 0
    assert v("poolbridge_connection_create_time_seconds_bucket", le="0.005") == 1
    assert v("poolbridge_connection_create_time_seconds_bucket", le="0.25") == 2


def test_prometheus_one_series_per_pool_and_unregister() -> None:
    registry = CollectorRegistry()
    a, b = RecorderPool("a", "asyncpg"), RecorderPool("b", "psycopg")
    a.recorder.record_created(0.01)
    prometheus.register(a, registry)
    prometheus.register(b, registry)  # same registry: one collector, no name clash
    got = scrape(registry)
    created = {k: val for k, val in got.items() if k[0] == "poolbridge_connection_created_total"}
    assert created == {
        ("poolbridge_connection_created_total", (("adapter", "asyncpg"), ("pool", "a"))): 1,
        ("poolbridge_connection_created_total", (("adapter", "psycopg"), ("pool", "b"))): 0,
    }
    prometheus.unregister(a, registry)
    got = scrape(registry)
    assert {k[1] for k in got if k[0] == "poolbridge_connection_max"} == {
        (("adapter", "psycopg"), ("pool", "b"))
    }
    with pytest.raises(ValueError, match=r"unique PoolConfig\.name"):
        prometheus.register(RecorderPool("b", "psycopg"), registry)


def otel_points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    out: dict[str, list[Any]] = {}
    assert data is not None
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                out.setdefault(m.name, []).extend(m.data.data_points)
    return out


def test_otel_observables_and_histograms() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    pool = RecorderPool("orders", "asyncpg")
    pool.recorder.record_created(0.5)  # before instrument(): only in the stats dict
    otel.instrument(pool, meter_provider=provider)
    drive(pool)
    points = otel_points(reader)
    stats = pool.stats()
    by_state = {
        p.attributes["db.client.connection.state"]: p.value
        for p in points["db.client.connection.count"]
    }
    assert by_state == {
        "idle": stats["connection.count.idle"],
        "used": stats["connection.count.used"],
    }
    for p in points["db.client.connection.count"]:
        assert p.attributes["db.client.connection.pool.name"] == "orders"
    single = {
        "db.client.connection.max": 4,
        "db.client.connection.idle.max": 4,
        "db.client.connection.idle.min": 1,
        "db.client.connection.pending_requests": 3,
        "db.client.connection.timeouts": 1,
    }
    for name, value in single.items():
        assert [(p.value, dict(p.attributes)) for p in points[name]] == [
            (value, {"db.client.connection.pool.name": "orders"})
        ], name
    create = points["db.client.connection.create_time"]
    assert [(p.count, p.sum) for p in create] == [(2, pytest.approx(0.203))]
    assert list(create[0].explicit_bounds) == list(BUCKETS[:-1])
    wait = points["db.client.connection.wait_time"][0]
    assert (wait.count, wait.min, wait.max) == (2, 0.0001, 0.07)
    use = points["db.client.connection.use_time"][0]
    assert (use.count, use.sum) == (1, 0.02)
    otel.uninstrument(pool, meter_provider=provider)
    pool.recorder.record_checkin(1.0)
    after = otel_points(reader)
    assert "db.client.connection.max" not in after or after["db.client.connection.max"] == []
    assert pool.recorder._listeners == ()
    provider.shutdown()


def test_failing_listener_does_not_break_recording(caplog: pytest.LogCaptureFixture) -> None:
    pool = RecorderPool()

    def boom(kind: str, seconds: float) -> None:
        raise RuntimeError("exporter down")

    pool.recorder.add_listener(boom)
    pool.recorder.record_checkout(0.01)
    assert pool.stats()["connection.count.used"] == 1
    assert "stats listener" in caplog.text


@pytest.mark.parametrize(
    ("module", "blocked", "extra"),
    [
        ("poolbridge.metrics.prometheus", "prometheus_client", "prometheus"),
        ("poolbridge.metrics.otel", "opentelemetry", "otel"),
    ],
)
def test_missing_extra_names_the_install_command(
    monkeypatch: pytest.MonkeyPatch, module: str, blocked: str, extra: str
) -> None:
    real_import = builtins.__import__

    def fake_import(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == blocked or name.startswith(blocked + "."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, module)
    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match=rf"pip install 'poolbridge\[{extra}\]'") as info:
        importlib.import_module(module)
    assert isinstance(info.value, MetricsNotAvailable)
