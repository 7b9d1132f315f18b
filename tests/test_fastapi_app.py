"""The FastAPI example under 100 concurrent requests, checked against the server.

httpx's ASGITransport does not run the lifespan, so the test enters
``app.router.lifespan_context(app)`` itself: startup opens the pool, leaving it closes it.
The pool's connections are identified server-side by the backend pids its on_connect
hook recorded.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from poolbridge import ConnectionEvent, Hooks, PoolConfig

APP_PATH = Path(__file__).resolve().parents[1] / "examples" / "fastapi_app" / "app.py"
ADAPTERS = ["asyncpg", "psycopg", "sqlalchemy", "tortoise", "peewee_async"]
REQUESTS = 100


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("poolbridge_fastapi_example", APP_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def need_adapter(name: str) -> None:
    if importlib.util.find_spec(f"poolbridge.adapters.{name}") is None:
        pytest.skip(f"adapter module poolbridge.adapters.{name} does not exist yet")


async def server_count(url: str, pids: set[int]) -> int:
    conn = await asyncpg.connect(url)
    try:
        n: int = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])", list(pids)
        )
        return n
    finally:
        await conn.close()


async def wait_server_count(url: str, pids: set[int], expected: int, within: float = 10.0) -> int:
    """The server's count once it equals ``expected`` (backends exit asynchronously)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        n = await server_count(url, pids)
        if n == expected or asyncio.get_running_loop().time() > deadline:
            return n
        await asyncio.sleep(0.05)


def samples(text: str, pool: str) -> dict[tuple[str, str], float]:
    """(sample name, state-or-le label) -> value, for the series of ``pool`` only."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.labels.get("pool") == pool:
                out[(s.name, s.labels.get("state") or s.labels.get("le") or "")] = s.value
    return out


async def exercise(client: httpx.AsyncClient, db: Any, pg_url: str, connected: set[int]) -> None:
    """100 concurrent requests, then stats, server and /metrics must agree at rest."""
    max_size = db.config.max_size
    name = db.config.name
    responses = await asyncio.gather(*(client.get("/backend") for _ in range(REQUESTS)))
    assert [r.status_code for r in responses] == [200] * REQUESTS
    served = {r.json()["pid"] for r in responses}
    # every request ran on one of the pool's own connections, never above max_size
    assert served <= connected
    assert 1 <= len(connected) <= max_size

    stats = db.pool.stats()
    assert stats["connection.count.used"] == 0
    assert stats["connection.pending_requests"] == 0
    assert stats["connection.wait_time"]["count"] >= REQUESTS
    open_now = stats["connection.created"] - stats["connection.closed"]
    assert open_now == stats["connection.count.idle"]
    assert await server_count(pg_url, connected) == open_now

    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    got = samples(metrics.text, name)
    stats = db.pool.stats()
    assert got[("poolbridge_connection_count", "used")] == 0
    assert got[("poolbridge_connection_count", "idle")] == open_now
    assert got[("poolbridge_connection_max", "")] == max_size
    assert got[("poolbridge_connection_created_total", "")] == stats["connection.created"]
    assert (
        got[("poolbridge_connection_wait_time_seconds_count", "")]
        == (stats["connection.wait_time"]["count"])
    )


@pytest.mark.asyncio
@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_concurrent_requests_leave_nothing_open(pg_url: str, adapter: str) -> None:
    need_adapter(adapter)
    example = load_example()
    connected: set[int] = set()

    def on_connect(event: ConnectionEvent) -> None:
        assert isinstance(event.connection_id, int)
        connected.add(event.connection_id)

    name = f"fastapi-{adapter}-{uuid.uuid4().hex[:8]}"
    config = PoolConfig(url=pg_url, name=name, min_size=1, max_size=4, acquire_timeout=30)
    registry = CollectorRegistry()
    app = example.create_app(
        config, adapter=adapter, hooks=Hooks(on_connect=on_connect), registry=registry
    )
    db: Any = app.state.db
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://app") as client,
    ):
        await exercise(client, db, pg_url, connected)
        pool = db.pool
    # shutdown closed the pool: nothing of it is left on the server, the totals agree
    assert pool.closed
    assert await wait_server_count(pg_url, connected, 0) == 0
    final = pool.stats()
    assert final["connection.created"] == final["connection.closed"]
    assert final["connection.count.used"] == final["connection.count.idle"] == 0
    # the collector dropped the closed pool's series
    assert name not in generate_latest(registry).decode()
    with pytest.raises(RuntimeError, match="not open"):
        _ = db.pool


#: what ``PoolBridge.connection`` yields per adapter: (module prefix, class name)
YIELDS = {
    "asyncpg": ("asyncpg", "Connection"),
    "psycopg": ("psycopg", "AsyncConnection"),
    "sqlalchemy": ("sqlalchemy.ext.asyncio", "AsyncSession"),
    "peewee_async": ("aiopg", "Connection"),  # PostgresqlDatabase runs on aiopg
}


@pytest.mark.asyncio
@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_dependency_yields_the_stacks_object(pg_url: str, adapter: str) -> None:
    need_adapter(adapter)
    from fastapi import Depends, FastAPI

    from poolbridge.integrations.fastapi import PoolBridge

    db = PoolBridge(
        PoolConfig(url=pg_url, name=f"dep-{uuid.uuid4().hex[:8]}", min_size=1, max_size=2),
        adapter=adapter,
    )
    app = FastAPI(lifespan=db.lifespan)
    seen: list[Any] = []

    @app.get("/kind")
    async def kind(conn: Any = Depends(db.connection)) -> dict[str, int]:
        seen.append(conn)
        return {"used": db.pool.stats()["connection.count.used"]}

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as c,
    ):
        r = await c.get("/kind")
        assert r.status_code == 200
        obj = seen[0]
        if adapter == "tortoise":
            assert obj is db.pool.native
        else:
            module, cls = YIELDS[adapter]
            # the stack's own class, or a subclass of it (psycopg's pool counts connects
            # through a connection_class subclass)
            assert any(
                k.__module__.startswith(module) and k.__name__ == cls for k in type(obj).__mro__
            ), type(obj).__mro__
            if adapter != "sqlalchemy":  # a session checks out lazily, on first use
                assert r.json()["used"] == 1
        assert db.pool.stats()["connection.count.used"] == 0


@pytest.mark.asyncio
async def test_two_pools_one_lifespan_and_metrics(pg_url: str) -> None:
    need_adapter("asyncpg")
    need_adapter("psycopg")
    from fastapi import Depends, FastAPI

    from poolbridge.integrations.fastapi import PoolBridge, add_metrics_route, poolbridge_lifespan

    tag = uuid.uuid4().hex[:8]
    pids: set[int] = set()
    hooks = Hooks(on_connect=lambda e: pids.add(int(e.connection_id or 0)))
    a = PoolBridge(PoolConfig(url=pg_url, name=f"a-{tag}", max_size=2), "asyncpg", hooks=hooks)
    b = PoolBridge(PoolConfig(url=pg_url, name=f"b-{tag}", max_size=2), "psycopg", hooks=hooks)
    app = FastAPI(lifespan=poolbridge_lifespan(a, b))
    registry = CollectorRegistry()
    add_metrics_route(app, a, b, registry=registry, path="/internal/metrics")

    @app.get("/both")
    async def both(x: Any = Depends(a.connection), y: Any = Depends(b.connection)) -> list[int]:
        cur = await y.execute("SELECT pg_backend_pid()")
        return [await x.fetchval("SELECT pg_backend_pid()"), (await cur.fetchone())[0]]

    with pytest.raises(RuntimeError, match="not open"):
        _ = a.pool
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as c,
    ):
        got = await asyncio.gather(*(c.get("/both") for _ in range(20)))
        assert {r.status_code for r in got} == {200}
        assert {pid for r in got for pid in r.json()} <= pids
        text = (await c.get("/internal/metrics")).text
        for bridge in (a, b):
            series = samples(text, bridge.config.name)
            assert series[("poolbridge_connection_wait_time_seconds_count", "")] == 20
            assert series[("poolbridge_connection_count", "used")] == 0
        assert await server_count(pg_url, pids) == len(pids)
        pools = [a.pool, b.pool]
    assert all(p.closed for p in pools)
    assert await wait_server_count(pg_url, pids, 0) == 0
    assert generate_latest(registry).decode().count(tag) == 0


def test_missing_fastapi_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins
    import importlib

    from poolbridge.errors import AdapterNotAvailable

    real_import = builtins.__import__

    def fake_import(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "fastapi" or name.startswith("fastapi."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "poolbridge.integrations.fastapi", raising=False)
    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(AdapterNotAvailable, match=r"pip install 'poolbridge\[fastapi\]'"):
        importlib.import_module("poolbridge.integrations.fastapi")


@pytest.mark.asyncio
async def test_bridge_exports_to_otel_while_open(pg_url: str) -> None:
    need_adapter("asyncpg")
    from fastapi import Depends, FastAPI
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from poolbridge.integrations.fastapi import PoolBridge
    from poolbridge.metrics import otel

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    name = f"otel-{uuid.uuid4().hex[:8]}"
    db = PoolBridge(PoolConfig(url=pg_url, name=name, max_size=2), adapter="asyncpg")
    db.export_to(otel.instruments_for(provider))
    app = FastAPI(lifespan=db.lifespan)

    @app.get("/one")
    async def one(conn: Any = Depends(db.connection)) -> int:
        return int(await conn.fetchval("SELECT 1"))

    def wait_counts() -> list[int]:
        data = reader.get_metrics_data()
        return [
            p.count
            for rm in (data.resource_metrics if data else [])
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == "db.client.connection.wait_time"
            for p in m.data.data_points
            if p.attributes.get("db.client.connection.pool.name") == name
        ]

    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as c,
        ):
            got = await asyncio.gather(*(c.get("/one") for _ in range(15)))
            assert [r.json() for r in got] == [1] * 15
            assert wait_counts() == [db.pool.stats()["connection.wait_time"]["count"]]
            assert wait_counts() == [15]
            recorder = db.pool.recorder
        # closed: the listener is gone, the pool no longer observed
        assert recorder._listeners == ()
        assert otel.instruments_for(provider).pools() == []
    finally:
        provider.shutdown()


@pytest.mark.asyncio
async def test_failed_startup_leaves_no_pool_open(pg_url: str) -> None:
    """A second pool with the same name in one registry is refused, and closed at once."""
    need_adapter("asyncpg")
    from fastapi import FastAPI

    from poolbridge.integrations.fastapi import PoolBridge, add_metrics_route, poolbridge_lifespan

    pids: set[int] = set()
    hooks = Hooks(on_connect=lambda e: pids.add(int(e.connection_id or 0)))
    config = PoolConfig(url=pg_url, name=f"dup-{uuid.uuid4().hex[:8]}", min_size=2, max_size=2)
    first, second = (PoolBridge(config, "asyncpg", hooks=hooks) for _ in range(2))
    app = FastAPI(lifespan=poolbridge_lifespan(first, second))
    add_metrics_route(app, first, second, registry=CollectorRegistry())
    with pytest.raises(ValueError, match="already exported"):
        async with app.router.lifespan_context(app):
            pass
    assert len(pids) == 4  # both pools had warmed up before the clash
    assert await wait_server_count(pg_url, pids, 0) == 0
    with pytest.raises(RuntimeError, match="not open"):
        _ = first.pool
