"""One vocabulary across adapters: the same verbs in every adapter package, and
``poolbridge.adapters.sqlalchemy.create_async_engine`` behaving like SQLAlchemy's own
(synchronous, SQLAlchemy's keyword arguments passed through, an AsyncEngine back)."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from poolbridge.adapters.base import ADAPTER_VERBS
from poolbridge.config.model import PoolConfig
from poolbridge.errors import UnsupportedOptionError

PACKAGES = ("sqlalchemy", "psycopg", "tortoise", "peewee_async")


@pytest.mark.parametrize("package", PACKAGES)
def test_every_adapter_package_exports_the_same_verbs(package: str) -> None:
    module = importlib.import_module(f"poolbridge.adapters.{package}")
    for verb in ADAPTER_VERBS:
        assert verb in module.__all__, f"poolbridge.adapters.{package} lacks {verb}"
        assert callable(getattr(module, verb))
        params = inspect.signature(getattr(module, verb)).parameters
        assert "config" in params
        assert not [p for p in params if p.startswith("_")], f"{package}.{verb}: {params}"
    assert not inspect.iscoroutinefunction(module.open_pool)  # awaitable or async with
    # what docs/adapters/index.md's vocabulary table reads from the package
    assert isinstance(module.ORM_ENTRY_POINTS, tuple)
    assert module.HANDLE_ACCESS is None or isinstance(module.HANDLE_ACCESS, str)
    assert "hooks" in inspect.signature(module.open_pool).parameters


@pytest.mark.parametrize("package", PACKAGES)
def test_no_private_parameter_in_a_public_signature(package: str) -> None:
    module = importlib.import_module(f"poolbridge.adapters.{package}")
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.isfunction(obj):
            private = [p for p in inspect.signature(obj).parameters if p.startswith("_")]
            assert not private, f"{package}.{name} has private parameters {private}"


def test_old_names_are_aliases() -> None:
    from poolbridge.adapters import sqlalchemy, tortoise

    assert sqlalchemy.engine_kwargs is sqlalchemy.native_arguments
    assert tortoise.tortoise_config is tortoise.native_arguments


def _pg(pg_url: str, name: str, **fields: object) -> PoolConfig:
    return PoolConfig.from_url(pg_url, name=name, driver="asyncpg", **fields)  # type: ignore[arg-type]


async def _server_count(pg_url: str, name: str) -> int:
    conn = await asyncpg.connect(pg_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        n = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", name
        )
        return int(n)
    finally:
        await conn.close()


async def _until(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


@pytest.mark.asyncio
async def test_create_async_engine_is_synchronous_and_warms_up_in_the_background(
    pg_url: str,
) -> None:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from poolbridge.adapters.sqlalchemy import close_engine, create_async_engine, handle_of

    assert not inspect.iscoroutinefunction(create_async_engine)
    name = f"pb_vocab_{uuid.uuid4().hex[:8]}"
    engine = create_async_engine(_pg(pg_url, name, min_size=3, max_size=5))
    try:
        assert isinstance(engine, AsyncEngine)
        assert await _server_count(pg_url, name) == 0  # nothing opened at creation
        async with engine.connect() as conn:  # first use: warm-up starts in the background
            await conn.exec_driver_sql("SELECT 1")

        async def warmed() -> bool:
            return await _server_count(pg_url, name) == 3

        await _until(warmed)
        stats = handle_of(engine).stats()
        assert stats["connection.count.idle"] + stats["connection.count.used"] == 3
        assert handle_of(engine) is handle_of(engine)
    finally:
        await close_engine(engine)
    assert await _server_count(pg_url, name) == 0


@pytest.mark.asyncio
async def test_warm_up_opens_min_size_now_and_returns_the_engine(pg_url: str) -> None:
    from poolbridge.adapters.sqlalchemy import create_async_engine, handle_of, warm_up

    name = f"pb_vocab_{uuid.uuid4().hex[:8]}"
    # a URL with pool options in its query, as everywhere
    url = pg_url.replace("postgresql://", "postgresql+asyncpg://")
    sep = "&" if "?" in url else "?"
    engine = create_async_engine(f"{url}{sep}min_size=2&max_size=4&name={name}")
    pool = handle_of(engine)
    try:
        assert pool.config.min_size == 2 and pool.config.max_size == 4
        assert await warm_up(engine) is engine
        assert await _server_count(pg_url, name) == 2  # no waiting: opened by warm_up
    finally:
        await pool.close()
    assert await _server_count(pg_url, name) == 0


@pytest.mark.asyncio
async def test_awaiting_the_engine_fails_clearly(pg_url: str) -> None:
    from poolbridge.adapters.sqlalchemy import close_engine, create_async_engine

    engine = create_async_engine(_pg(pg_url, "pb_vocab_await", min_size=0))
    try:
        with pytest.raises(TypeError, match=r"AsyncEngine can't be used in 'await'"):
            await engine  # type: ignore[misc]
    finally:
        await close_engine(engine)


@pytest.mark.asyncio
async def test_sqlalchemy_keyword_arguments_pass_through(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from poolbridge.adapters.sqlalchemy import close_engine, create_async_engine, warm_up

    name = f"pb_vocab_{uuid.uuid4().hex[:8]}"
    engine = create_async_engine(
        _pg(pg_url, name, min_size=1, max_size=2),
        echo=True,
        connect_args={"server_settings": {"search_path": "pb_vocab_path"}},
    )
    try:
        assert engine.echo is True
        await warm_up(engine)
        with caplog.at_level(logging.INFO, logger="sqlalchemy.engine"):
            async with engine.connect() as conn:
                path = (await conn.exec_driver_sql("SHOW search_path")).scalar()
        assert path == "pb_vocab_path"
        assert "SHOW search_path" in caplog.text  # echo=True logged the statement
    finally:
        await close_engine(engine)


@pytest.mark.parametrize(
    ("kwarg", "value"),
    [("pool_size", 3), ("max_overflow", 2), ("pool_timeout", 1), ("pool_recycle", 60),
     ("poolclass", object)],
)  # fmt: skip
def test_pool_arguments_the_config_owns_are_refused_by_name(
    pg_url: str, kwarg: str, value: object
) -> None:
    from poolbridge.adapters.sqlalchemy import create_async_engine

    with pytest.raises(UnsupportedOptionError, match=kwarg):
        create_async_engine(_pg(pg_url, "pb_vocab_refused"), **{kwarg: value})


@pytest.mark.asyncio
async def test_open_pool_of_each_package_gives_the_uniform_handle(pg_url: str) -> None:
    for package in PACKAGES:
        module = importlib.import_module(f"poolbridge.adapters.{package}")
        name = f"pb_vocab_{uuid.uuid4().hex[:8]}"
        cfg = PoolConfig.from_url(pg_url, name=name, min_size=1, max_size=2)
        async with module.open_pool(cfg) as pool:
            assert pool.config.name == name
            assert pool.native is not None
            assert "connection.count.idle" in pool.stats()
            assert await _server_count(pg_url, name) >= 1
        assert await _server_count(pg_url, name) == 0, package


@pytest.mark.asyncio
async def test_peewee_database_reaches_its_handle(pg_url: str) -> None:
    from poolbridge.adapters.peewee_async import database, handle_of

    name = f"pb_vocab_{uuid.uuid4().hex[:8]}"
    db = database(PoolConfig.from_url(pg_url, name=name, min_size=1, max_size=2))
    pool = handle_of(db)
    assert pool is handle_of(db) and pool.native is db
    await db.aio_connect()
    assert await _server_count(pg_url, name) >= 1
    await pool.rotate()
    assert pool.stats()["connection.count.idle"] >= 1
    await pool.close(timeout=1)
    assert await _server_count(pg_url, name) == 0
    with pytest.raises(ValueError, match="peewee_async"):
        handle_of(object())


def test_fastapi_integration_takes_a_url_like_every_opener(pg_url: str) -> None:
    pytest.importorskip("fastapi")
    from poolbridge.integrations.fastapi import PoolBridge

    bridge = PoolBridge(f"{pg_url}?max_size=3&name=pb_vocab_fastapi", adapter="asyncpg")
    assert bridge.config.max_size == 3 and bridge.config.name == "pb_vocab_fastapi"


@pytest.mark.asyncio
async def test_warm_up_reports_an_unreachable_server_as_connect_error() -> None:
    from poolbridge.adapters.sqlalchemy import close_engine, create_async_engine, warm_up
    from poolbridge.errors import ConnectError

    # port 1 on loopback: nothing listens there
    engine = create_async_engine(
        "postgresql+asyncpg://root@127.0.0.1:1/test?min_size=1&connect_timeout=1s"
    )
    try:
        with pytest.raises(ConnectError):
            await warm_up(engine)
        # disposed, not closed: nothing left running, and the engine still answers
        assert engine.sync_engine.pool._dormant  # type: ignore[attr-defined]
    finally:
        await close_engine(engine)
