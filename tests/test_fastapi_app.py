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
ADAPTERS = ["asyncpg", "psycopg", "sqlalchemy", "tortoise"]
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
    assert got[("poolbridge_connection_wait_time_seconds_count", "")] == (
        stats["connection.wait_time"]["count"]
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
