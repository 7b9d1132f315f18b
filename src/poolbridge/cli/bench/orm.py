"""The ORM stacks of ``poolbridge bench``: SQLAlchemy asyncio, Tortoise ORM and peewee-async.

Variants as in :mod:`poolbridge.cli.bench.drivers`: ``poolbridge`` (the adapter, opened
with ``open_pool`` or the adapter's initialiser), ``hand`` (the ORM configured with its own
API and the values PoolConfig means, written out here), ``raw`` (the ORM's own pool with its
defaults). The small ORM query selects one row by primary key through
the ORM's query API: a SQLAlchemy Core ``select()`` on a Table, Tortoise ``Model.get``,
peewee-async ``aio_get``.
"""

from __future__ import annotations

import sys
import types
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import unquote, urlsplit

from poolbridge.cli.bench.drivers import (
    ACQUIRE_TIMEOUT,
    CONNECT_TIMEOUT,
    MAX_LIFETIME,
    NAME,
    ROW_ID,
    SIZE,
    TABLE,
    Ops,
    config,
    url_for,
)

_SA_SCHEME = {
    "asyncpg": "postgresql",
    "psycopg": "postgresql",
    "aiomysql": "mysql",
    "asyncmy": "mysql",
}
#: connect_args a user would write for each driver: the connect timeout in the driver's own
#: keyword, and the pool's name as application_name where PostgreSQL takes one
_SA_CONNECT_ARGS: dict[str, dict[str, Any]] = {
    "asyncpg": {"timeout": CONNECT_TIMEOUT, "server_settings": {"application_name": NAME}},
    "psycopg": {"connect_timeout": CONNECT_TIMEOUT, "application_name": NAME},
    "aiomysql": {"connect_timeout": CONNECT_TIMEOUT},
    "asyncmy": {"connect_timeout": CONNECT_TIMEOUT},
}


@asynccontextmanager
async def open_sqlalchemy(driver: str, variant: str) -> AsyncIterator[Ops]:
    from sqlalchemy import Column, Integer, MetaData, String, Table, select, text
    from sqlalchemy.ext.asyncio import create_async_engine as sa_create

    import poolbridge

    backend = _SA_SCHEME[driver]
    url = f"{backend}+{driver}://{url_for(backend).split('://', 1)[1]}"
    pool: Any = None
    if variant == "poolbridge":
        pool = await poolbridge.open_pool(config(backend, driver=driver), adapter="sqlalchemy")
        engine = pool.native
    elif variant == "hand":  # QueuePool of exactly 10, the same timeouts and recycling
        engine = sa_create(
            url,
            pool_size=SIZE,
            max_overflow=0,
            pool_timeout=ACQUIRE_TIMEOUT,
            pool_recycle=MAX_LIFETIME,
            pool_pre_ping=False,
            pool_reset_on_return="rollback",
            connect_args=_SA_CONNECT_ARGS[driver],
        )
    else:  # SQLAlchemy's defaults (QueuePool pool_size=5, max_overflow=10)
        engine = sa_create(url)
    items = Table(
        TABLE, MetaData(), Column("id", Integer, primary_key=True), Column("name", String(32))
    )
    one, by_id = text("SELECT 1"), select(items).where(items.c.id == ROW_ID)

    async def select1() -> Any:
        async with engine.connect() as conn:
            return (await conn.execute(one)).scalar()

    async def orm() -> Any:
        async with engine.connect() as conn:
            return (await conn.execute(by_id)).first()

    try:
        yield Ops(select1, orm, engine.connect)
    finally:
        if pool is not None:
            await pool.close()
        else:
            await engine.dispose()


def _models_module(kind: str) -> str:
    """A module holding the bench model (``kind`` tortoise/peewee), registered in
    sys.modules so that Tortoise can import it by name."""
    name = f"pb_bench_models_{kind}"
    if name in sys.modules:
        return name
    mod = types.ModuleType(name)
    if kind == "tortoise":
        from tortoise import fields
        from tortoise.models import Model

        class Item(Model):
            id = fields.IntField(primary_key=True)
            name = fields.CharField(max_length=32)

            class Meta:
                table = TABLE
                app = "models"

        Item.__module__ = name
        mod.Item = Item  # type: ignore[attr-defined]
    sys.modules[name] = mod
    return name


@asynccontextmanager
async def open_tortoise(backend: str, variant: str) -> AsyncIterator[Ops]:
    from tortoise import Tortoise

    module = _models_module("tortoise")
    item: Any = sys.modules[module].Item
    close: Callable[[], Awaitable[Any]]
    if variant == "poolbridge":
        from poolbridge.adapters.tortoise import init

        pools = await init(config(backend), {"models": [module]})
        close = pools.close
    else:
        u = urlsplit(url_for(backend))
        creds: dict[str, Any] = {
            "host": u.hostname,
            "port": u.port,
            "user": unquote(u.username or "root"),
            "password": unquote(u.password or ""),
            "database": u.path.lstrip("/"),
        }
        if variant == "hand":
            creds.update(minsize=1, maxsize=SIZE)
        engine = "tortoise.backends." + ("asyncpg" if backend == "postgresql" else "mysql")
        await Tortoise.init(
            config={
                "connections": {"default": {"engine": engine, "credentials": creds}},
                "apps": {"models": {"models": [module], "default_connection": "default"}},
            }
        )
        close = Tortoise.close_connections
    client = Tortoise.get_connection("default")

    async def select1() -> Any:
        return await client.execute_query("SELECT 1")

    async def orm() -> Any:
        return await item.get(id=ROW_ID)

    try:
        yield Ops(select1, orm, client.acquire_connection)
    finally:
        await close()


@asynccontextmanager
async def open_peewee(backend: str, variant: str) -> AsyncIterator[Ops]:
    import peewee
    import peewee_async

    import poolbridge

    pool: Any = None
    if variant == "poolbridge":
        pool = await poolbridge.open_pool(config(backend), adapter="peewee_async")
        db = pool.native
    else:
        u = urlsplit(url_for(backend))
        kw: dict[str, Any] = {
            "host": u.hostname,
            "port": u.port,
            "user": unquote(u.username or "root"),
            "password": unquote(u.password or ""),
        }
        if variant == "hand":
            kw["pool_params"] = {"minsize": 1, "maxsize": SIZE}
        if backend == "postgresql":
            db = peewee_async.PostgresqlDatabase(u.path.lstrip("/"), **kw)
        else:
            if variant == "hand":
                kw["pool_params"]["autocommit"] = True
            else:
                kw["pool_params"] = {"autocommit": True}
            db = peewee_async.MySQLDatabase(u.path.lstrip("/"), **kw)

    class Item(peewee_async.AioModel):  # type: ignore[misc]
        id = peewee.IntegerField(primary_key=True)
        name = peewee.CharField(max_length=32)

        class Meta:
            database = db
            table_name = TABLE

    if pool is None:
        await db.aio_connect()

    async def select1() -> Any:
        return await db.aio_execute_sql("SELECT 1")

    async def orm() -> Any:
        return await Item.aio_get(Item.id == ROW_ID)

    try:
        yield Ops(select1, orm, db.aio_connection)
    finally:
        if pool is not None:
            await pool.close()
        else:
            await db.aio_close()
