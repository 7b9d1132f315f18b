"""The peewee-async adapter against real PostgreSQL (aiopg, psycopg), MariaDB and SQLite.

Server-side facts decide: a pool's connections are the server ids its on_connect recorded.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from poolbridge import PoolClosed, PoolConfig, PoolTimeout, UnsupportedOptionError, open_pool
from poolbridge.adapters.peewee_async import adapter, database, pool_params

from ..tortoise.serverside import Recorder, alive, alive_after_close
from .models_peewee import TABLE, Item

CASES = [("pg_url", "aiopg"), ("pg_url", "psycopg"), ("mysql_url", "aiomysql")]


async def _drop(db: object) -> None:
    await db.aio_execute_sql(f"DROP TABLE IF EXISTS {TABLE}")  # type: ignore[attr-defined]


@pytest.mark.asyncio
@pytest.mark.parametrize(("which", "driver"), CASES)
async def test_orm_entry_points_on_poolbridge_within_max_size(
    request: pytest.FixtureRequest, which: str, driver: str
) -> None:
    url = str(request.getfixturevalue(which))
    rec = Recorder()
    cfg = PoolConfig(
        url=url, driver=driver, min_size=1, max_size=3, acquire_timeout=10, name="pb_pw_orm"
    )
    db = database(cfg, hooks=rec.hooks())
    Item.bind(db)
    try:
        await db.aio_connect()
        await Item.aio_create_table(safe=True)
        peak = 0
        backend = db.pool_backend

        async def work(i: int) -> None:
            nonlocal peak
            await Item.aio_create(name=f"n{i}")
            got = await Item.aio_get(Item.name == f"n{i}")
            assert got.name == f"n{i}"
            peak = max(peak, backend.holder.recorder.used)

        await asyncio.gather(*(work(i) for i in range(30)))
        rows = await db.aio_execute(Item.select())
        assert len(list(rows)) == 30
        with pytest.raises(RuntimeError):
            async with db.aio_atomic():
                await Item.aio_create(name="rolled-back")
                raise RuntimeError("boom")
        assert await Item.select().where(Item.name == "rolled-back").aio_count() == 0
        async with db.aio_atomic():
            await Item.aio_create(name="committed")
        assert await Item.select().where(Item.name == "committed").aio_count() == 1
        opened = rec.ids()
        assert 1 <= len(opened) <= 3 and 1 <= peak <= 3
        assert len(await alive(url, opened)) <= 3
        assert rec.count("on_checkin") == rec.count("on_checkout") >= 30
        await _drop(db)
    finally:
        await db.aio_close()
    assert await alive_after_close(url, rec.ids()) == set()
    assert rec.count("on_close") == len(rec.ids())


@pytest.mark.asyncio
@pytest.mark.parametrize(("which", "driver"), [("pg_url", "aiopg"), ("mysql_url", "aiomysql")])
async def test_exhausted_pool_raises_pool_timeout_in_about_a_second(
    request: pytest.FixtureRequest, which: str, driver: str
) -> None:
    url = str(request.getfixturevalue(which))
    rec = Recorder()
    cfg = PoolConfig(
        url=url, driver=driver, min_size=1, max_size=2, acquire_timeout=1, name="pb_pw_to"
    )
    pool = await open_pool(cfg, adapter="peewee_async", hooks=rec.hooks())
    db = pool.native
    release = asyncio.Event()
    holding = 0

    async def hold() -> None:
        nonlocal holding
        async with db.aio_connection():
            holding += 1
            await release.wait()

    holders = [asyncio.create_task(hold()) for _ in range(2)]
    try:
        while holding < 2:
            await asyncio.sleep(0.01)
        t0 = time.monotonic()
        with pytest.raises(PoolTimeout, match="max_size=2"):
            await db.aio_execute_sql("SELECT 1")
        assert 0.9 <= time.monotonic() - t0 < 5.0
        release.set()
        await asyncio.gather(*holders)
        assert await db.aio_execute_sql("SELECT 1") is None  # serves again
        assert pool.stats()["connection.timeouts"] == 1 and rec.count("on_timeout") == 1
    finally:
        release.set()
        await pool.close(timeout=2)
    assert await alive_after_close(url, rec.ids()) == set()


@pytest.mark.asyncio
async def test_close_drains_in_use_connections_first(pg_url: str) -> None:
    rec = Recorder()
    cfg = PoolConfig(url=pg_url, min_size=1, max_size=1, name="pb_pw_drain")
    pool = await open_pool(cfg, adapter="peewee_async", hooks=rec.hooks())
    db = pool.native
    started = asyncio.Event()

    async def slow() -> object:
        async with db.aio_connection() as conn:
            started.set()
            async with conn.cursor() as cur:
                await cur.execute("SELECT pg_sleep(0.5), 7")
                return (await cur.fetchone())[1]

    task = asyncio.create_task(slow())
    await started.wait()
    await pool.close(timeout=5)  # peewee-async's own aio_close() would kill the query
    assert await task == 7
    assert await alive_after_close(pg_url, rec.ids()) == set()
    with pytest.raises(PoolClosed):
        async with pool.acquire():
            pass


@pytest.mark.asyncio
@pytest.mark.parametrize(("url", "driver"), [
    ("postgresql://u@127.0.0.1/db", "asyncpg"), ("mysql://u@127.0.0.1/db", "asyncmy"),
])  # fmt: skip
async def test_drivers_peewee_async_lacks_are_refused_up_front(url: str, driver: str) -> None:
    cfg = PoolConfig(url=url, driver=driver)
    with pytest.raises(UnsupportedOptionError, match=f"no {driver} backend"):
        adapter.translate(cfg)
    with pytest.raises(UnsupportedOptionError):
        database(cfg)
    with pytest.raises(UnsupportedOptionError):
        await open_pool(cfg, adapter="peewee_async")


@pytest.mark.asyncio
async def test_self_built_database_with_pool_params(pg_url: str) -> None:
    from poolbridge.adapters.peewee_async import PostgresqlDatabase

    rec = Recorder()
    cfg = PoolConfig(url=pg_url, min_size=2, max_size=2, name="pb_pw_own")
    db = PostgresqlDatabase("test", pool_params=pool_params(cfg, hooks=rec.hooks()))
    try:
        await db.aio_connect()
        assert len(rec.ids()) == 2  # warmed up to min_size
        assert await alive(pg_url, rec.ids()) == rec.ids()
        row = await db.aio_execute_sql("SELECT 5", fetch_results=_fetchone)
        assert row[0] == 5
    finally:
        await db.aio_close()
    assert await alive_after_close(pg_url, rec.ids()) == set()
    with pytest.raises(TypeError, match="pool_params"):
        PostgresqlDatabase("test")


async def _fetchone(db: object, cursor: object) -> object:
    return await cursor.fetchone()  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_sqlite_gets_a_real_pool(sqlite_url: str) -> None:
    cfg = PoolConfig(url=sqlite_url, min_size=1, max_size=2, acquire_timeout=1, name="pb_pw_lite")
    pool = await open_pool(cfg, adapter="peewee_async")
    db = pool.native
    Item.bind(db)
    try:
        await Item.aio_create_table(safe=True)
        await Item.aio_create(name="a")
        assert (await Item.aio_get(Item.name == "a")).name == "a"
        for name, point in adapter.entry_points(pool).items():
            async with point() as run:
                assert await run("SELECT 3") == 3, name
        async with pool.acquire(), pool.acquire():
            with pytest.raises(PoolTimeout):
                await db.aio_execute_sql("SELECT 1")
    finally:
        await pool.close()
