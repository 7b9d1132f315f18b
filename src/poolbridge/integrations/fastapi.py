"""FastAPI integration: lifespan, per-request dependency, Prometheus ``/metrics`` route.

Usage::

    from fastapi import Depends, FastAPI
    from poolbridge import PoolConfig
    from poolbridge.integrations.fastapi import PoolBridge, add_metrics_route

    db = PoolBridge(PoolConfig(url="postgresql://app@db/app", max_size=5), adapter="asyncpg")
    app = FastAPI(lifespan=db.lifespan)
    add_metrics_route(app, db)                      # GET /metrics, Prometheus text format

    @app.get("/answer")
    async def answer(conn=Depends(db.connection)):
        return await conn.fetchval("SELECT 42")

What :meth:`PoolBridge.connection` yields depends on the adapter, so that handlers use
their stack the usual way:

- ``sqlalchemy``: an ``AsyncSession`` bound to the engine (``pool.native``), closed (and so
  rolled back unless committed) after the request;
- ``tortoise``: the Tortoise connection (the client, ``pool.native``), which checks a
  connection out per query;
- ``peewee_async``: the connection of ``db.aio_connection()``; peewee-async queries in the
  request (``aio_execute``, ``AioModel.aio_*``) run on it;
- every other adapter (raw drivers, psycopg): the native connection of ``pool.acquire()``.

:meth:`PoolBridge.raw_connection` always yields ``pool.acquire()``'s connection.
Several pools: ``FastAPI(lifespan=poolbridge_lifespan(db_a, db_b))``.
Needs the ``poolbridge[fastapi]`` extra (and ``poolbridge[prometheus]`` for ``/metrics``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any, Protocol

from poolbridge._open import open_pool
from poolbridge.adapters.base import as_config
from poolbridge.config.model import PoolConfig
from poolbridge.errors import AdapterNotAvailable
from poolbridge.pool.handle import Pool
from poolbridge.pool.hooks import Hooks

try:
    from fastapi import FastAPI, Response
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise AdapterNotAvailable(
        "poolbridge.integrations.fastapi needs FastAPI: pip install 'poolbridge[fastapi]'"
    ) from exc

__all__ = ["PoolBridge", "PoolExporter", "add_metrics_route", "poolbridge_lifespan"]


class PoolExporter(Protocol):
    """Anything that exports pools: the Prometheus collector, the OTel instruments."""

    def add(self, pool: Any) -> None: ...

    def remove(self, pool: Any) -> None: ...


class PoolBridge:
    """One pool for an ASGI app: opened by :meth:`lifespan`, used through dependencies.

    ``close_timeout`` is how long shutdown waits for checked-out connections to come back
    before they are terminated (``Pool.close(timeout=)``).
    """

    def __init__(
        self,
        config: PoolConfig | str,
        adapter: str,
        *,
        hooks: Hooks | None = None,
        close_timeout: float | None = 10.0,
    ) -> None:
        # a URL carries the pool options in its query, as every adapter's open_pool() takes it
        self.config = as_config(config)
        self.adapter = adapter
        self.hooks = hooks
        self.close_timeout = close_timeout
        self._pool: Pool[Any] | None = None
        self._session_factory: Callable[[], Any] | None = None
        self._exporters: list[PoolExporter] = []

    @property
    def pool(self) -> Pool[Any]:
        """The open pool; RuntimeError outside the app's lifespan."""
        if self._pool is None:
            raise RuntimeError(
                f"pool {self.config.name!r} is not open: pass FastAPI(lifespan=bridge.lifespan) "
                "(or poolbridge_lifespan(...)) and use it inside the app's lifespan"
            )
        return self._pool

    def export_to(self, exporter: PoolExporter) -> None:
        """Add the pool to ``exporter`` while it is open (now, if it already is)."""
        self._exporters.append(exporter)
        if self._pool is not None:
            exporter.add(self._pool)

    # -- lifecycle ----------------------------------------------------------------------
    async def open(self) -> Pool[Any]:
        """Open (and warm up) the pool; done by :meth:`lifespan` at startup."""
        if self._pool is not None:
            return self._pool
        pool = await open_pool(self.config, adapter=self.adapter, hooks=self.hooks)
        added: list[PoolExporter] = []
        try:
            if self.adapter == "sqlalchemy":
                from sqlalchemy.ext.asyncio import async_sessionmaker

                self._session_factory = async_sessionmaker(pool.native, expire_on_commit=False)
            for exporter in self._exporters:
                exporter.add(pool)  # e.g. ValueError: a pool of that name is exported already
                added.append(exporter)
        except BaseException:
            for exporter in added:
                exporter.remove(pool)
            self._session_factory = None
            await pool.close(timeout=0)  # never leave a pool open behind a failed startup
            raise
        self._pool = pool
        return pool

    async def close(self) -> None:
        """Close the pool (drain up to ``close_timeout``, then terminate); idempotent."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        self._session_factory = None
        try:
            await pool.close(timeout=self.close_timeout)
        finally:
            # keep the final totals exportable until now, then drop the series
            for exporter in self._exporters:
                exporter.remove(pool)

    @asynccontextmanager
    async def lifespan(self, app: Any = None) -> AsyncIterator[None]:
        """``FastAPI(lifespan=bridge.lifespan)``: open at startup, close at shutdown."""
        await self.open()
        try:
            yield
        finally:
            await self.close()

    # -- dependencies -------------------------------------------------------------------
    async def connection(self) -> AsyncIterator[Any]:
        """Dependency: the stack's connection or session for one request (module doc)."""
        pool = self.pool
        if self._session_factory is not None:
            async with self._session_factory() as session:
                yield session
        elif self.adapter == "tortoise":
            yield pool.native
        elif self.adapter == "peewee_async":
            async with pool.native.aio_connection() as conn:
                yield conn
        else:
            async with pool.acquire() as conn:
                yield conn

    async def raw_connection(self) -> AsyncIterator[Any]:
        """Dependency: the native connection of ``pool.acquire()``, whatever the adapter."""
        async with self.pool.acquire() as conn:
            yield conn


def poolbridge_lifespan(
    *bridges: PoolBridge,
) -> Callable[[Any], AbstractAsyncContextManager[None]]:
    """A lifespan opening every bridge at startup and closing them in reverse at shutdown."""

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for bridge in bridges:
                await stack.enter_async_context(bridge.lifespan(app))
            yield

    return lifespan


def add_metrics_route(
    app: FastAPI, *bridges: PoolBridge, path: str = "/metrics", registry: Any = None
) -> None:
    """Serve ``registry`` (default: prometheus_client's REGISTRY) at ``GET path``.

    Each bridge's pool is exported through the registry's poolbridge collector while it
    is open: one series per pool, labelled ``pool`` and ``adapter``.
    """
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

    from poolbridge.metrics import (
        prometheus,  # first: names the extra if prometheus_client is missing
    )

    reg = REGISTRY if registry is None else registry
    collector = prometheus.collector_for(reg)
    for bridge in bridges:
        bridge.export_to(collector)

    async def metrics() -> Response:
        return Response(generate_latest(reg), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route(path, metrics, methods=["GET"], include_in_schema=False)
