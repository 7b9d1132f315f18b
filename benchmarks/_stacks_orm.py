"""The ORM stacks of bench.py: SQLAlchemy asyncio, Tortoise ORM and peewee-async.

Variants as in ``_stacks_drivers``: ``poolbridge`` (the adapter's entry point),
``hand`` (the ORM configured natively with the equivalent arguments), ``raw`` (the ORM's
own pool with its defaults). The small ORM query selects one row by primary key through
the ORM's query API: a SQLAlchemy Core ``select()`` on a Table, Tortoise ``Model.get``,
peewee-async ``aio_get``.
"""

from __future__ import annotations

import sys
import types
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

from _stacks_drivers import ROW_ID, SIZE, TABLE, Ops, config, url_for

_SA_SCHEME = {
    "asyncpg": "postgresql",
    "psycopg": "postgresql",
    "aiomysql": "mysql",
    "asyncmy": "mysql",
}


@asynccontextmanager
async def open_sqlalchemy(driver: str, variant: str) -> AsyncIterator[Ops]:
    from sqlalchemy import Column, Integer, MetaData, String, Table, select, text
    from sqlalchemy.ext.asyncio import create_async_engine as sa_create

    from poolbridge.adapters.sqlalchemy import close_engine, create_async_engine, engine_kwargs

    backend = _SA_SCHEME[driver]
    cfg = config(backend, driver=driver)
    if variant == "poolbridge":
        engine = await create_async_engine(cfg)
    elif variant == "hand":  # the equivalent native arguments (pool_size=10, ...)
        with warnings.catch_warnings():  # knobs plain kwargs cannot carry: said once
            warnings.simplefilter("ignore")
            kw = engine_kwargs(cfg)
        engine = sa_create(kw.pop("url"), **kw)
    else:  # SQLAlchemy's defaults (QueuePool pool_size=5, max_overflow=10)
        engine = sa_create(f"{backend}+{driver}://{url_for(backend).split('://', 1)[1]}")
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
        if variant == "poolbridge":
            await close_engine(engine)
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
    if variant == "poolbridge":
        from poolbridge.adapters.tortoise import init

        pools = await init(config(backend), {"models": [module]})
        close = pools.close
    else:
        u = urlsplit(url_for(backend))
        creds: dict[str, Any] = {
            "host": u.hostname,
            "port": u.port,
            "user": u.username or "root",
            "password": u.password or "",
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

    if variant == "poolbridge":
        from poolbridge.adapters.peewee_async import database

        db = database(config(backend))
    else:
        u = urlsplit(url_for(backend))
        kw: dict[str, Any] = {"host": u.hostname, "port": u.port, "user": u.username or "root"}
        if variant == "hand":
            kw["pool_params"] = {"minsize": 1, "maxsize": SIZE}
        if backend == "postgresql":
            db = peewee_async.PostgresqlDatabase(u.path.lstrip("/"), **kw)
        else:
            kw["password"] = u.password or ""
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

    await db.aio_connect()

    async def select1() -> Any:
        return await db.aio_execute_sql("SELECT 1")

    async def orm() -> Any:
        return await Item.aio_get(Item.id == ROW_ID)

    try:
        yield Ops(select1, orm, db.aio_connection)
    finally:
        await db.aio_close()
