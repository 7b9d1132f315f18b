"""peewee-async's stock twin for the conformance suite's ``parity_*`` rows.

The stock side is peewee-async's own database class, built by hand from the URL with its
native arguments (database name, host/port/user/password, connect kwargs, ``pool_params``);
poolbridge's side is :func:`~poolbridge.adapters.peewee_async.database` with the same
connect kwargs. Both are used through peewee-async's API (``aio_connect``,
``aio_execute_sql``, ``aio_connection``, ``aio_close``, the synchronous ``connect``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any
from urllib.parse import unquote, urlsplit

from poolbridge.adapters._rows import first_value
from poolbridge.adapters.base import StackSide, StockTwin, TwinSpec

__all__ = ["PeeweeAsyncTwin"]

#: pool attributes compared by value (sizes and state; each side's other configuration
#: attributes follow knobs a parity spec does not set, whose defaults differ by design)
_VALUES = ("minsize", "maxsize", "size", "freesize", "closed", "echo")
_SIZED = ("_used", "_free")
_PSYCOPG_VALUES = ("min_size", "max_size", "timeout", "closed")


def _stock_database(spec: TwinSpec) -> Any:
    """peewee-async's own database class for the URL (no poolbridge code)."""
    import peewee_async

    parts = urlsplit(spec.url)
    if spec.driver == "aiosqlite":
        return peewee_async.SqliteDatabase(
            spec.url.split("///", 1)[1].split("?", 1)[0], **dict(spec.keys)
        )
    kwargs: dict[str, Any] = {
        "host": parts.hostname,
        "port": parts.port,
        "user": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        **dict(spec.keys),
    }
    name = parts.path.lstrip("/")
    if spec.driver == "psycopg":
        if spec.ssl is not None:
            kwargs["sslmode"] = spec.ssl
        pool = {"min_size": spec.min_size, "max_size": spec.max_size, "timeout": spec.timeout}
        return peewee_async.Psycopg3Database(name, **kwargs, pool_params=pool)
    pool = {"minsize": spec.min_size, "maxsize": spec.max_size}
    if spec.driver == "aiopg":
        if spec.ssl is not None:
            kwargs["sslmode"] = spec.ssl
        return peewee_async.PostgresqlDatabase(name, **kwargs, pool_params=pool)
    if spec.ssl is not None:
        kwargs["ssl"] = spec.ssl
    return peewee_async.MySQLDatabase(name, **kwargs, pool_params=pool)


class PeeweeSide(StackSide):
    """One peewee-async database."""

    def __init__(self, db: Any, driver: str) -> None:
        self.db = db
        self.driver = driver

    async def connect(self) -> None:
        await self.db.aio_connect()

    async def scalar(self, sql: str) -> Any:
        import peewee_async

        row = await self.db.aio_execute_sql(sql, fetch_results=peewee_async.databases.fetchone)
        return first_value(row)

    def hold(self) -> AbstractAsyncContextManager[Any]:
        held: AbstractAsyncContextManager[Any] = self.db.aio_connection()
        return held

    async def close(self) -> None:
        await self.db.aio_close()

    def identity(self) -> Mapping[str, Any]:
        db = self.db
        names = (
            "param", "quote", "commit_select", "compound_select_parentheses", "for_update",
            "index_schema_prefix", "limit_max", "nulls_ordering", "returning_clause",
            "safe_create_index", "safe_drop_index", "sequences", "truncate_table",
        )  # fmt: skip
        out: dict[str, Any] = {n: getattr(db, n, None) for n in names}
        out["field_types"] = dict(db.field_types)
        out["operations"] = dict(db.operations)
        stock_modules = ("peewee_async", "peewee", "playhouse")
        out["async database class"] = next(
            c for c in type(db).__mro__ if c.__module__.startswith(stock_modules)
        )
        return out

    async def ddl(self, table: str) -> list[str]:
        import peewee

        class Thing(peewee.Model):
            name = peewee.CharField(max_length=40, index=True)
            size = peewee.IntegerField(default=0)

            class Meta:
                database = self.db
                table_name = table

        # the SQL without running it: private context builders, pinned in
        # tests/peewee_async/test_private_members.py
        schema: Any = peewee.SchemaManager(Thing)
        contexts = [schema._create_table(), *schema._create_indexes(), schema._drop_table()]
        return [ctx.query()[0] for ctx in contexts]

    def pool_surface(self) -> Mapping[str, Any] | None:
        pool = self.db.pool_backend.pool
        if pool is None:
            return None
        out: dict[str, Any] = {
            f"has {n}": True for n in dir(pool) if not n.startswith("_") and n != "from_pool_fill"
        }
        values = _PSYCOPG_VALUES if self.driver == "psycopg" else _VALUES
        out.update({n: getattr(pool, n) for n in values if hasattr(pool, n)})
        out.update({f"len {n}": len(getattr(pool, n)) for n in _SIZED if hasattr(pool, n)})
        if self.driver == "psycopg":
            out["pool_size"] = pool.get_stats()["pool_size"]
        return out

    async def sync_scalar(self, sql: str) -> Any:
        def run() -> Any:
            with self.db.allow_sync():
                self.db.connect(reuse_if_open=True)
                try:
                    return first_value(self.db.execute_sql(sql).fetchone())
                finally:
                    self.db.close()

        return await asyncio.to_thread(run)


class PeeweeAsyncTwin(StockTwin):
    """peewee-async's classes built by hand (stock) and ``database(config)`` (poolbridge)."""

    async def stock(self, spec: TwinSpec) -> StackSide:
        return PeeweeSide(_stock_database(spec), spec.driver)

    async def ours(self, spec: TwinSpec) -> StackSide:
        from poolbridge.adapters.peewee_async import database

        return PeeweeSide(database(spec.config(), **dict(spec.keys)), spec.driver)

    def session_keys(self, backend: str, driver: str) -> Mapping[str, Any]:
        if driver == "psycopg":
            return {}  # stock passes extra connect kwargs to psycopg_pool (a TypeError)
        if backend == "postgresql":
            return {"application_name": "pb_parity_app"}
        if backend == "mysql":
            return {"init_command": "SET time_zone = '+02:00'", "charset": "latin1"}
        # SQLite: peewee's ``pragmas`` reach only the synchronous connection stock; the
        # async one takes aiosqlite's connect kwargs, none of which a PRAGMA reports
        return {}

    def ssl_form(self, backend: str, driver: str) -> Any:
        if backend == "mysql":
            import ssl

            return ssl.create_default_context()
        return "require"

    def closed_rows(self, backend: str, driver: str) -> Mapping[str, str]:
        if driver == "psycopg":
            return {
                "parity_ssl": "peewee-async's psycopg database has no TLS parameter: its "
                "extra connect kwargs go to psycopg_pool, which refuses sslmode (TypeError)",
            }
        if driver == "aiosqlite":
            return {
                "parity_pool": "peewee-async's SQLite pool opens one connection per acquire: "
                "no sizes to compare (tests/peewee_async/test_parity.py compares its "
                "attributes)",
            }
        return {}
