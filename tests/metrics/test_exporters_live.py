"""Scrape the real exporters while a real pool is under load on PostgreSQL.

Each check compares three views: what the exporter publishes, ``pool.stats()`` and the
server (pg_stat_activity rows of the backend pids the pool's on_connect recorded).
"""

from __future__ import annotations

import asyncio
import importlib.util
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from poolbridge import ConnectionEvent, Hooks, Pool, PoolConfig, PoolTimeout, open_pool
from poolbridge.adapters.registry import get_adapter
from poolbridge.metrics import otel, prometheus

pytestmark = pytest.mark.asyncio

ADAPTERS = ["asyncpg", "psycopg", "sqlalchemy", "tortoise", "peewee_async"]
TASKS, ROUNDS, MAX_SIZE = 12, 10, 3
WORK_SQL = "SELECT pg_sleep(0.004)"


def need_adapter(name: str) -> None:
    if importlib.util.find_spec(f"poolbridge.adapters.{name}") is None:
        pytest.skip(f"adapter module poolbridge.adapters.{name} does not exist yet")


@asynccontextmanager
async def live_pool(pg_url: str, adapter: str) -> AsyncIterator[tuple[Pool[Any], set[int]]]:
    pids: set[int] = set()

    def on_connect(event: ConnectionEvent) -> None:
        assert isinstance(event.connection_id, int)
        pids.add(event.connection_id)

    config = PoolConfig(
        url=pg_url,
        name=f"metrics-{adapter}-{uuid.uuid4().hex[:8]}",
        min_size=1,
        max_size=MAX_SIZE,
        acquire_timeout=30,
    )
    async with open_pool(config, adapter=adapter, hooks=Hooks(on_connect=on_connect)) as pool:
        yield pool, pids
    # closed: none of the pool's backends is left on the server
    assert await settle(pg_url, pids) == 0


async def server_count(url: str, pids: set[int]) -> int:
    conn = await asyncpg.connect(url)
    try:
        n: int = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])", list(pids)
        )
        return n
    finally:
        await conn.close()


async def settle(url: str, pids: set[int]) -> int:
    for _ in range(100):
        n = await server_count(url, pids)
        if n == 0:
            return 0
        await asyncio.sleep(0.05)
    return n


async def load(pool: Pool[Any], adapter: str, probe: Any) -> int:
    """TASKS tasks x ROUNDS acquires; ``probe()`` runs between rounds. Returns acquires."""
    impl = get_adapter(adapter)

    async def worker() -> None:
        for _ in range(ROUNDS):
            async with pool.acquire() as conn:
                await impl.fetch_scalar(conn, WORK_SQL)

    async def prober(stop: asyncio.Event) -> None:
        while not stop.is_set():
            probe()
            await asyncio.sleep(0.003)

    stop = asyncio.Event()
    probe_task = asyncio.create_task(prober(stop))
    await asyncio.gather(*(worker() for _ in range(TASKS)))
    stop.set()
    await probe_task
    return TASKS * ROUNDS


def prom_samples(registry: CollectorRegistry, pool: str) -> dict[tuple[str, str], float]:
    out = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            if s.labels.get("pool") == pool:
                out[(s.name, s.labels.get("state") or s.labels.get("le") or "")] = s.value
    return out


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_prometheus_scrapes_match_stats_and_server(pg_url: str, adapter: str) -> None:
    need_adapter(adapter)
    async with live_pool(pg_url, adapter) as (pool, pids):
        registry = CollectorRegistry()
        prometheus.register(pool, registry)
        seen_used: list[float] = []
        mismatches: list[str] = []

        def probe() -> None:
            # a scrape and a stats read with no await between them see the same pool
            got = prom_samples(registry, pool.name)
            stats = pool.stats()
            used, idle = (
                got[("poolbridge_connection_count", "used")],
                got[("poolbridge_connection_count", "idle")],
            )
            seen_used.append(used)
            if (used, idle) != (stats["connection.count.used"], stats["connection.count.idle"]):
                mismatches.append(f"scrape {used=} {idle=} vs stats {stats}")
            if used + idle != stats["connection.created"] - stats["connection.closed"]:
                mismatches.append(f"open count off: {used=} {idle=}")
            if (
                got[("poolbridge_connection_pending_requests", "")]
                != (stats["connection.pending_requests"])
            ):
                mismatches.append("pending_requests differs")

        before = pool.stats()["connection.wait_time"]["count"]
        acquires = await load(pool, adapter, probe)
        assert mismatches == []
        assert len(seen_used) >= 3
        assert max(seen_used) == MAX_SIZE  # the load saturated the pool while scraped
        assert max(seen_used) <= MAX_SIZE

        got = prom_samples(registry, pool.name)
        stats = pool.stats()
        assert got[("poolbridge_connection_count", "used")] == 0
        assert got[("poolbridge_connection_wait_time_seconds_count", "")] == before + acquires
        assert (
            got[("poolbridge_connection_use_time_seconds_count", "")]
            == (stats["connection.use_time"]["count"])
        )
        assert stats["connection.use_time"]["count"] >= acquires
        assert got[("poolbridge_connection_use_time_seconds_sum", "")] == pytest.approx(
            stats["connection.use_time"]["sum"]
        )
        # every request held a connection >= the 4 ms sleep: nothing in the 0.5 ms bucket
        # beyond the few non-load checkouts (warm-up probes etc.)
        assert got[("poolbridge_connection_use_time_seconds_bucket", "0.0025")] <= (
            stats["connection.use_time"]["count"] - acquires
        )
        open_now = got[("poolbridge_connection_count", "idle")]
        assert (
            got[("poolbridge_connection_created_total", "")]
            - got[("poolbridge_connection_closed_total", "")]
            == open_now
        )
        assert await server_count(pg_url, pids) == open_now
        assert 1 <= open_now <= MAX_SIZE

        await cause_timeout_with_short_pool(pg_url, adapter, registry)


async def cause_timeout_with_short_pool(
    pg_url: str, adapter: str, registry: CollectorRegistry
) -> None:
    """A 1-connection pool with a 0.2 s acquire_timeout: one PoolTimeout, exported."""
    config = PoolConfig(
        url=pg_url,
        name=f"metrics-timeout-{uuid.uuid4().hex[:8]}",
        min_size=1,
        max_size=1,
        acquire_timeout=0.2,
    )
    async with open_pool(config, adapter=adapter) as pool:
        prometheus.register(pool, registry)
        async with pool.acquire():
            with pytest.raises(PoolTimeout):
                async with pool.acquire():
                    pass
        got = prom_samples(registry, pool.name)
        assert got[("poolbridge_connection_timeouts_total", "")] == 1
        assert pool.stats()["connection.timeouts"] == 1
        prometheus.unregister(pool, registry)
    assert pool.name not in generate_latest(registry).decode()


def otel_points(reader: InMemoryMetricReader, pool: str) -> dict[tuple[str, str], Any]:
    data = reader.get_metrics_data()
    assert data is not None
    out: dict[tuple[str, str], Any] = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for p in metric.data.data_points:
                    attrs = dict(p.attributes)
                    if attrs.get("db.client.connection.pool.name") == pool:
                        out[(metric.name, attrs.get("db.client.connection.state", ""))] = p
    return out


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_otel_reader_matches_stats_and_server(pg_url: str, adapter: str) -> None:
    need_adapter(adapter)
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        async with live_pool(pg_url, adapter) as (pool, pids):
            otel.instrument(pool, meter_provider=provider)
            start = pool.stats()
            mismatches: list[str] = []
            seen_used: list[int] = []

            def probe() -> None:
                points = otel_points(reader, pool.name)
                stats = pool.stats()
                used = points[("db.client.connection.count", "used")].value
                idle = points[("db.client.connection.count", "idle")].value
                seen_used.append(used)
                if (used, idle) != (stats["connection.count.used"], stats["connection.count.idle"]):
                    mismatches.append(f"{used=} {idle=} vs {stats}")
                pending = points[("db.client.connection.pending_requests", "")].value
                if pending != stats["connection.pending_requests"]:
                    mismatches.append("pending differs")

            acquires = await load(pool, adapter, probe)
            assert mismatches == []
            assert max(seen_used) == MAX_SIZE

            points = otel_points(reader, pool.name)
            stats = pool.stats()
            assert points[("db.client.connection.max", "")].value == MAX_SIZE
            assert points[("db.client.connection.idle.max", "")].value == MAX_SIZE
            assert points[("db.client.connection.idle.min", "")].value == 1
            assert points[("db.client.connection.timeouts", "")].value == 0
            wait = points[("db.client.connection.wait_time", "")]
            use = points[("db.client.connection.use_time", "")]
            # the histograms were fed event by event since instrument(): every acquire
            since = {
                k: stats[k]["count"] - start[k]["count"]
                for k in ("connection.wait_time", "connection.use_time")
            }
            assert wait.count == since["connection.wait_time"] == acquires
            assert wait.sum == pytest.approx(
                stats["connection.wait_time"]["sum"] - start["connection.wait_time"]["sum"]
            )
            assert use.count == since["connection.use_time"] == acquires
            assert use.min >= 0.004  # every use held the connection through pg_sleep(0.004)
            created = stats["connection.created"] - start["connection.created"]
            if created:
                assert points[("db.client.connection.create_time", "")].count == created
            open_now = points[("db.client.connection.count", "idle")].value
            assert points[("db.client.connection.count", "used")].value == 0
            assert await server_count(pg_url, pids) == open_now
            otel.uninstrument(pool, meter_provider=provider)
            assert (
                "db.client.connection.max",
                "",
            ) not in otel_points(reader, pool.name)
    finally:
        provider.shutdown()
