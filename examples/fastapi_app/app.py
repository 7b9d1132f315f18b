"""A FastAPI app on a poolbridge pool: lifespan, per-request connection, /metrics.

Run it (PostgreSQL URL from POOLBRIDGE_URL, adapter from POOLBRIDGE_ADAPTER)::

    pip install 'poolbridge[fastapi,prometheus,asyncpg]' uvicorn
    POOLBRIDGE_URL=postgresql://root@127.0.0.1:5432/test uvicorn app:app

Routes: ``GET /backend`` (the server-side id of the connection serving the request, after
a short ``pg_sleep`` so that concurrent requests really share the pool), ``GET /stats``
(the pool's counts) and ``GET /metrics`` (Prometheus text format).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Depends, FastAPI

from poolbridge import Hooks, PoolConfig
from poolbridge.integrations.fastapi import PoolBridge, add_metrics_route

BACKEND_SQL = "SELECT pg_backend_pid() FROM (SELECT pg_sleep(0.005)) AS s"


async def _asyncpg(conn: Any, sql: str) -> Any:
    return await conn.fetchval(sql)


async def _psycopg(conn: Any, sql: str) -> Any:
    cur = await conn.execute(sql)
    row = await cur.fetchone()
    return row[0]


async def _sqlalchemy(session: Any, sql: str) -> Any:
    from sqlalchemy import text

    return (await session.execute(text(sql))).scalar()


async def _tortoise(client: Any, sql: str) -> Any:
    rows = await client.execute_query_dict(sql)
    return next(iter(rows[0].values()))


async def _peewee_async(conn: Any, sql: str) -> Any:
    # the connection of db.aio_connection(): peewee-async queries in this request
    # (db.aio_execute, AioModel.aio_*) run on it too
    async with conn.cursor() as cur:
        await cur.execute(sql)
        row = await cur.fetchone()
    return row[0]


#: how a handler runs one query on what ``db.connection`` yields, per adapter
SCALAR: dict[str, Callable[[Any, str], Awaitable[Any]]] = {
    "asyncpg": _asyncpg,
    "psycopg": _psycopg,
    "sqlalchemy": _sqlalchemy,
    "tortoise": _tortoise,
    "peewee_async": _peewee_async,
}


def create_app(
    config: PoolConfig,
    *,
    adapter: str = "asyncpg",
    hooks: Hooks | None = None,
    registry: Any = None,
) -> FastAPI:
    """Build the app; ``registry`` is the prometheus_client registry served at /metrics."""
    db = PoolBridge(config, adapter=adapter, hooks=hooks)
    scalar = SCALAR[adapter]
    app = FastAPI(lifespan=db.lifespan)
    app.state.db = db
    add_metrics_route(app, db, registry=registry)

    @app.get("/backend")
    async def backend(conn: Any = Depends(db.connection)) -> dict[str, int]:
        return {"pid": int(await scalar(conn, BACKEND_SQL))}

    @app.get("/stats")
    async def stats() -> dict[str, int]:
        s = db.pool.stats()
        return {k: v for k, v in s.items() if isinstance(v, int)}

    return app


app = create_app(
    PoolConfig(
        url=os.environ.get("POOLBRIDGE_URL", "postgresql://root@127.0.0.1:5432/test"),
        name="fastapi-example",
        min_size=1,
        max_size=5,
    ),
    adapter=os.environ.get("POOLBRIDGE_ADAPTER", "asyncpg"),
)
