"""The Tortoise adapter against real PostgreSQL and MariaDB (SQLite where it applies).

Server-side facts (pg_stat_activity, PROCESSLIST) decide: a pool's connections are the
server ids its on_connect hook recorded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import logging
import ssl
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from poolbridge import (
    PoolConfig,
    PoolTimeout,
    UnsupportedOptionError,
    UnsupportedOptionWarning,
    open_pool,
)
from poolbridge.adapters import tortoise as pb_tortoise
from poolbridge.adapters.tortoise import adapter, connect, init, tortoise_config

from .serverside import Recorder, alive, alive_after_close, execute

MODELS = {"models": ["tests.tortoise.models_tortoise"]}


@pytest_asyncio.fixture
async def item_table() -> AsyncIterator[str]:
    from .models_tortoise import TABLE

    yield TABLE


async def _drop(url: str, table: str) -> None:
    await execute(url, f"DROP TABLE IF EXISTS {table}")


def _url(request: pytest.FixtureRequest, which: str) -> str:
    return str(request.getfixturevalue(which))


@pytest.mark.asyncio
@pytest.mark.parametrize("which", ["pg_url", "mysql_url"])
async def test_model_queries_run_on_the_engine_within_max_size(
    request: pytest.FixtureRequest, which: str, item_table: str
) -> None:
    from tortoise import Tortoise
    from tortoise.transactions import in_transaction

    from .models_tortoise import Item

    url = _url(request, which)
    # Tortoise caches compiled queries per (connection name, table): one name per backend
    alias = which.removesuffix("_url")
    rec = Recorder()
    cfg = PoolConfig(url=url, min_size=2, max_size=3, acquire_timeout=10, name="pb_tort_models")
    pools = await init(cfg, MODELS, connection=alias, hooks=rec.hooks())
    try:
        pool = pools[alias]
        # warmed up at init: Tortoise alone would not have connected yet
        assert len(rec.ids()) == 2
        assert await alive(url, rec.ids()) == rec.ids()
        await Tortoise.generate_schemas(safe=True)

        peak = 0

        async def work(i: int) -> None:
            nonlocal peak
            await Item.create(name=f"n{i}")
            assert await Item.filter(name=f"n{i}").count() == 1
            peak = max(peak, pool.stats()["connection.count.used"])

        await asyncio.gather(*(work(i) for i in range(30)))
        assert await Item.all().count() == 30
        # rollback through in_transaction on the engine
        with pytest.raises(RuntimeError):
            async with in_transaction(alias):
                await Item.create(name="rolled-back")
                raise RuntimeError("boom")
        assert await Item.filter(name="rolled-back").count() == 0
        async with in_transaction(alias):
            await Item.create(name="committed")
        assert await Item.filter(name="committed").count() == 1
        for point in adapter.entry_points(pool).values():  # alias != config.name
            async with point() as run:
                assert await run("SELECT 1") == 1

        opened = rec.ids()
        assert 2 <= len(opened) <= 3  # every connection the pool ever opened
        assert 1 <= peak <= 3
        assert len(await alive(url, opened)) <= 3
        assert rec.count("on_checkout") >= 30 and rec.count("on_checkin") == rec.count(
            "on_checkout"
        )
        await _drop(url, item_table)
    finally:
        await pools.close(timeout=5)
    assert await alive_after_close(url, rec.ids()) == set()
    assert rec.count("on_close") == len(rec.ids())


@pytest.mark.asyncio
async def test_exhausted_asyncpg_pool_raises_pool_timeout_in_about_a_second(
    pg_url: str, item_table: str
) -> None:
    from tortoise import Tortoise
    from tortoise.transactions import in_transaction

    from .models_tortoise import Item

    rec = Recorder()
    cfg = PoolConfig(url=pg_url, min_size=1, max_size=2, acquire_timeout=1, name="pb_tort_to")
    async with connect(cfg, MODELS, hooks=rec.hooks()) as pools:
        await Tortoise.generate_schemas(safe=True)
        release = asyncio.Event()
        holding = 0

        async def hold() -> None:
            nonlocal holding
            async with in_transaction("default"):
                holding += 1
                await release.wait()

        holders = [asyncio.create_task(hold()) for _ in range(2)]
        while holding < 2:
            await asyncio.sleep(0.01)
        t0 = time.monotonic()
        with pytest.raises(PoolTimeout) as info:
            await Item.filter(name="x").count()
        elapsed = time.monotonic() - t0
        assert 0.9 <= elapsed < 5.0
        assert "max_size=2" in str(info.value)
        release.set()
        await asyncio.gather(*holders)
        assert await Item.filter(name="x").count() == 0  # serves again
        assert pools["default"].stats()["connection.timeouts"] == 1
        assert rec.count("on_timeout") == 1
        await _drop(pg_url, item_table)
    assert await alive_after_close(pg_url, rec.ids()) == set()


@pytest.mark.asyncio
async def test_psycopg_backend_translates_pool_timeout(pg_url: str) -> None:
    cfg = PoolConfig(
        url=pg_url, driver="psycopg", min_size=1, max_size=1, acquire_timeout=1, name="pb_tort_pg3"
    )
    rec = Recorder()
    pool = await open_pool(cfg, adapter="tortoise", hooks=rec.hooks())
    try:
        points = adapter.entry_points(pool)
        async with pool.acquire():
            t0 = time.monotonic()
            with pytest.raises(PoolTimeout) as info:
                async with points["tortoise.connection"]() as run:
                    await run("SELECT 1")
            assert time.monotonic() - t0 < 5.0
        # the original psycopg_pool error is chained
        import psycopg_pool

        assert isinstance(info.value.__cause__, psycopg_pool.PoolTimeout)
        async with points["in_transaction"]() as run:
            assert await run("SELECT 1") == 1
    finally:
        await pool.close(timeout=2)
    assert rec.ids() and await alive_after_close(pg_url, rec.ids()) == set()


@pytest.mark.asyncio
@pytest.mark.parametrize("which", ["pg_url", "mysql_url"])
async def test_entry_points_and_close(request: pytest.FixtureRequest, which: str) -> None:
    url = _url(request, which)
    rec = Recorder()
    cfg = PoolConfig(url=url, min_size=1, max_size=2, acquire_timeout=5, name="pb_tort_ep")
    pool = await open_pool(cfg, adapter="tortoise", hooks=rec.hooks())
    points = adapter.entry_points(pool)
    assert set(points) >= {"handle", "tortoise.connection", "in_transaction"}
    for name, point in points.items():
        async with point() as run:
            assert await run("SELECT 41 + 1") == 42, name
    ids = set(pool.server_ids())
    assert ids == rec.ids() and await alive(url, ids) == ids
    await pool.close(timeout=1)
    await pool.close()  # idempotent
    assert await alive_after_close(url, rec.ids()) == set()
    from poolbridge import PoolClosed

    with pytest.raises(PoolClosed):
        async with pool.acquire():
            pass


@pytest.mark.asyncio
async def test_mysql_client_uses_the_driver_tortoise_imported(mysql_url: str) -> None:
    from tortoise.backends.mysql import client as tortoise_mysql

    imported = vars(tortoise_mysql)["mysql"].__name__
    cfg = PoolConfig(url=mysql_url, min_size=1, max_size=1, name="pb_tort_drv")
    assert adapter.driver_for(cfg) == imported
    other = "aiomysql" if imported == "asyncmy" else "asyncmy"
    if importlib.util.find_spec(other) is not None and imported == "asyncmy":
        with pytest.raises(UnsupportedOptionError, match="uses asyncmy"):
            tortoise_config(dataclasses.replace(cfg, driver=other))
    pool = await open_pool(cfg, adapter="tortoise")
    try:
        async with pool.acquire() as conn:
            assert type(conn).__module__.split(".")[0] == imported
    finally:
        await pool.close()


def test_timeout_means_connect_on_asyncpg_and_acquire_on_psycopg() -> None:
    cfg = PoolConfig(
        url="postgresql://u@127.0.0.1/db", connect_timeout=3, acquire_timeout=7, max_size=4
    )
    apg = adapter.translate(cfg).native["credentials"]
    assert apg["timeout"] == 3 and apg["maxsize"] == 4
    pg3 = adapter.translate(dataclasses.replace(cfg, driver="psycopg")).native["credentials"]
    assert pg3["timeout"] == 7
    assert pg3["server_settings"]["connect_timeout"] == "3"


def test_unknown_values_pass_through_untouched() -> None:
    ctx = ssl.create_default_context()
    cfg = PoolConfig(url="postgresql://u@127.0.0.1/db", ssl=ctx, driver_options={"x": ctx})
    conn = tortoise_config(cfg)["connections"]["default"]
    creds = conn["credentials"]
    assert creds["ssl"] is ctx
    binding = creds["poolbridge"]
    assert binding.config is cfg
    assert binding.engine_config.driver_options["x"] is ctx


def test_config_dict_carries_a_password_provider_not_the_password() -> None:
    secret = "Pw-in-url-1234"
    for driver in ("asyncpg", "psycopg"):
        cfg = PoolConfig(url=f"postgresql://u:{secret}@127.0.0.1/db", driver=driver)
        conf = tortoise_config(cfg)
        assert secret not in str(conf)
        assert callable(conf["connections"]["default"]["credentials"]["password"])
    cfg = PoolConfig(url=f"mysql://u:{secret}@127.0.0.1/db")
    assert secret not in str(tortoise_config(cfg)) and secret not in repr(adapter.translate(cfg))


def test_several_configs_give_several_connections() -> None:
    a = PoolConfig(url="postgresql://u@127.0.0.1/a", max_size=2, name="a")
    b = PoolConfig(url="mysql://u@127.0.0.1/b", max_size=3, name="b")
    conf = tortoise_config({"main": a, "reports": b}, apps={"m": {"models": ["x"]}})
    assert set(conf["connections"]) == {"main", "reports"}
    assert conf["connections"]["main"]["credentials"]["maxsize"] == 2
    assert conf["connections"]["reports"]["credentials"]["maxsize"] == 3
    mysql = pb_tortoise.table.mysql_driver_of_tortoise()
    assert conf["connections"]["reports"]["engine"] == pb_tortoise.table.ENGINE_MODULES[mysql]
    assert conf["connections"]["main"]["engine"].endswith(".backends.asyncpg")


@pytest.mark.asyncio
@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
async def test_password_never_reaches_tortoise_logs(pg_url: str, driver: str) -> None:
    secret = "Sup3rSecretPw-4-logs"
    # trust auth accepts any password; the point is what Tortoise prints
    url = pg_url.replace("root@", f"root:{secret}@")
    cfg = PoolConfig(url=url, driver=driver, min_size=1, max_size=1, name="pb_tort_redact")
    records: list[logging.LogRecord] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Capture(level=logging.DEBUG)
    loggers = [logging.getLogger(n) for n in ("tortoise", "tortoise.db_client")]
    saved = [(lg.level, lg.propagate) for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
        lg.addHandler(handler)
    try:
        async with connect(cfg, MODELS) as pools:
            point = adapter.entry_points(pools["default"])["tortoise.connection"]
            async with point() as run:
                assert await run("SELECT 1") == 1
    finally:
        for lg, (level, _) in zip(loggers, saved, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)
    text = "\n".join(r.getMessage() for r in records)
    assert "Tortoise-ORM startup" in text  # the log that used to show the password
    assert secret not in text and secret[: len(secret) // 3] not in text


@pytest.mark.asyncio
async def test_sqlite_file_is_pooled_on_the_engine(sqlite_url: str) -> None:
    from tortoise import Tortoise
    from tortoise.transactions import in_transaction

    from .models_tortoise import Item

    rec = Recorder()
    cfg = PoolConfig(url=sqlite_url, min_size=1, max_size=2, acquire_timeout=1, name="lite")
    async with connect(cfg, MODELS, connection="lite", hooks=rec.hooks()) as pools:
        pool = pools["lite"]
        await Tortoise.generate_schemas(safe=True)
        await asyncio.gather(*(Item.create(name=f"n{i}") for i in range(10)))
        assert await Item.all().count() == 10
        with pytest.raises(RuntimeError):
            async with in_transaction("lite"):
                await Item.create(name="rolled-back")
                raise RuntimeError("boom")
        assert await Item.filter(name="rolled-back").count() == 0
        for point in adapter.entry_points(pool).values():
            async with point() as run:
                assert await run("SELECT 2") == 2
        async with pool.acquire(), pool.acquire():
            t0 = time.monotonic()
            with pytest.raises(PoolTimeout):
                await Item.all().count()
            assert time.monotonic() - t0 < 5.0
        assert 1 <= len(rec.ids()) <= 2
    assert rec.count("on_close") == len(rec.ids())


@pytest.mark.asyncio
async def test_sqlite_memory_is_one_connection_and_says_so() -> None:
    url = "sqlite://:memory:"
    with pytest.raises(UnsupportedOptionError, match="max_size"):
        await open_pool(PoolConfig(url=url, max_size=5), adapter="tortoise")
    cfg = PoolConfig(url=url, max_size=1, max_lifetime=None, max_idle=None, name="pb_mem")
    with pytest.warns(UnsupportedOptionWarning) as got:
        pool = await open_pool(cfg, adapter="tortoise")
    assert any("acquire_timeout" in str(w.message) for w in got)
    try:
        for point in adapter.entry_points(pool).values():
            async with point() as run:
                assert await run("SELECT 2") == 2
        reasons = adapter.translate(cfg).unsupported
        assert "one connection" in reasons["acquire_timeout"]
    finally:
        await pool.close()
    assert pool.native._connection is None
