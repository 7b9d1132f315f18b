"""SQLAlchemy's stock twin for the conformance suite's ``parity_*`` rows.

The stock side is ``sqlalchemy.ext.asyncio.create_async_engine`` called by hand: the URL
with the driver written into its scheme, a QueuePool sized ``pool_size=max_size,
max_overflow=0, pool_timeout=timeout``, connect kwargs in ``connect_args``. poolbridge's
side is :func:`~poolbridge.adapters.sqlalchemy.create_async_engine` with the same connect
kwargs as ``driver_options``. Both are used through the AsyncEngine's own API.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

from poolbridge.adapters.base import StackSide, StockTwin, TwinSpec

__all__ = ["SQLAlchemyTwin"]

_SCHEMES = {"postgresql": "postgresql", "mysql": "mysql", "sqlite": "sqlite"}


def _stock_url(spec: TwinSpec) -> str:
    """The URL with ``+driver`` in its scheme, as a SQLAlchemy user writes it."""
    scheme, rest = spec.url.split("://", 1)
    backend = scheme.split("+", 1)[0]
    backend = {"postgres": "postgresql", "mariadb": "mysql"}.get(backend, backend)
    return f"{_SCHEMES[backend]}+{spec.driver}://{rest}"


def _stock_ssl(driver: str, form: Any) -> dict[str, Any]:
    if driver == "psycopg":
        return {"sslmode": form}
    return {"ssl": form}


class EngineSide(StackSide):
    """One AsyncEngine, made by ``make`` at :meth:`connect` (poolbridge's connects while it
    is created)."""

    def __init__(self, make: Callable[[], Awaitable[Any]]) -> None:
        self._make = make
        self._engine: Any = None

    @property
    def engine(self) -> Any:
        if self._engine is None:
            raise RuntimeError("the engine is not created: connect() first")
        return self._engine

    async def connect(self) -> None:
        if self._engine is None:
            self._engine = await self._make()
        async with self.engine.connect():
            pass

    async def scalar(self, sql: str) -> Any:
        async with self.engine.connect() as conn:
            return (await conn.exec_driver_sql(sql)).scalar()

    def hold(self) -> AbstractAsyncContextManager[Any]:
        held: AbstractAsyncContextManager[Any] = self.engine.connect()
        return held

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()

    def identity(self) -> Mapping[str, Any]:
        d = self.engine.dialect
        names = (
            "name", "driver", "server_version_info", "default_schema_name",
            "default_isolation_level", "paramstyle", "positional", "is_async",
            "supports_statement_cache", "supports_native_boolean", "returns_native_bytes",
            "supports_server_side_cursors", "max_identifier_length", "is_mariadb",
        )  # fmt: skip
        out: dict[str, Any] = {n: getattr(d, n, None) for n in names}
        out["dialect class"] = type(d)
        out["statement compiler"] = d.statement_compiler
        out["ddl compiler"] = d.ddl_compiler
        out["execution context"] = d.execution_ctx_cls
        return out

    async def ddl(self, table: str) -> list[str]:
        from sqlalchemy import Column, Index, Integer, MetaData, String, Table
        from sqlalchemy.schema import CreateIndex, CreateTable, DropTable

        t = Table(
            table,
            MetaData(),
            Column("id", Integer, primary_key=True),
            Column("name", String(40), nullable=False),
            Column("size", Integer, server_default="0"),
        )
        index = Index(f"ix_{table}_name", t.c.name)
        return [
            str(stmt.compile(dialect=self.engine.dialect))
            for stmt in (CreateTable(t), CreateIndex(index), DropTable(t))
        ]

    def pool_surface(self) -> Mapping[str, Any] | None:
        pool = self.engine.pool
        return {
            "size()": pool.size(),
            "checkedin()": pool.checkedin(),
            "checkedout()": pool.checkedout(),
            "overflow()": pool.overflow(),
            "timeout()": pool.timeout(),
            "status()": pool.status(),
        }

    async def sync_scalar(self, sql: str) -> Any:
        async with self.engine.connect() as conn:
            return await conn.run_sync(lambda sync: sync.exec_driver_sql(sql).scalar())


class SQLAlchemyTwin(StockTwin):
    """``create_async_engine`` called by hand (stock) and through poolbridge."""

    async def stock(self, spec: TwinSpec) -> StackSide:
        from sqlalchemy.ext.asyncio import create_async_engine

        connect_args = dict(spec.keys)
        if spec.ssl is not None:
            connect_args.update(_stock_ssl(spec.driver, spec.ssl))

        async def make() -> Any:
            return create_async_engine(
                _stock_url(spec),
                pool_size=spec.max_size,
                max_overflow=0,
                pool_timeout=spec.timeout,
                connect_args=connect_args,
            )

        return EngineSide(make)

    async def ours(self, spec: TwinSpec) -> StackSide:
        from poolbridge.adapters.sqlalchemy import create_async_engine, warm_up

        config = spec.config(driver_options=dict(spec.keys)) if spec.keys else spec.config()
        return EngineSide(lambda: warm_up(create_async_engine(config)))

    def session_keys(self, backend: str, driver: str) -> Mapping[str, Any]:
        if driver == "asyncpg":
            return {"server_settings": {"application_name": "pb_parity_app",
                                        "search_path": "pb_parity_schema"}}  # fmt: skip
        if driver == "psycopg":
            return {"application_name": "pb_parity_app", "options": "-c DateStyle=SQL,DMY"}
        if backend == "mysql":
            return {"init_command": "SET time_zone = '+02:00'"}
        return {}

    def ssl_form(self, backend: str, driver: str) -> Any:
        if backend == "mysql":
            return ssl.create_default_context()
        return "require" if driver == "psycopg" else True
