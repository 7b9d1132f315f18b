"""A user's libpq ``options`` (``-c name=value`` ...) reach the server as they do stock, on
every libpq stack (psycopg, psycopg_pool, aiopg, peewee-async on aiopg and psycopg,
Tortoise on psycopg, SQLAlchemy on psycopg), and poolbridge's own startup settings
(statement_timeout, session, application_name) stay beside them: merged, never replaced.
A ``statement_timeout`` / ``default_transaction_isolation`` there that disagrees with the
PoolConfig knob is refused naming both; the same value written another way is accepted.
Checked on the server (``SHOW``), against a stock connection given the same options."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from poolbridge import PoolConfig, open_pool
from poolbridge.adapters.registry import get_adapter
from poolbridge.drivers.base import (
    libpq_option_settings,
    libpq_options_for,
    libpq_words,
    pg_application_name,
)
from poolbridge.errors import UnsupportedOptionError

#: every PostgreSQL stack whose connections speak libpq
LIBPQ = [
    ("psycopg", None),
    ("aiopg", None),
    ("peewee_async", "aiopg"),
    ("peewee_async", "psycopg"),
    ("tortoise", "psycopg"),
    ("sqlalchemy", "psycopg"),
]
IDS = [f"{a}-{d}" if d else a for a, d in LIBPQ]
SHOWN = ("work_mem", "search_path", "lock_timeout", "statement_timeout", "application_name")
#: the user's options, in each spelling libpq and the server accept
USER_OPTIONS = r"-c work_mem=3MB -csearch_path=pb_user,\ public --lock-timeout=4s"


# -- parsing (pure) -------------------------------------------------------------------------


def test_words_split_on_unescaped_whitespace() -> None:
    assert libpq_words(r"-c a=b\ c  -cd=\\e ") == ["-c", "a=b c", "-cd=\\e"]
    assert libpq_words("") == []


def test_settings_in_every_spelling() -> None:
    got = libpq_option_settings(
        r"-c work_mem=3MB -cSearch_Path=a,\ b --lock-timeout=4s -B 10 -c x=1 -c x=2 -c"
    )
    assert got == {"work_mem": "3MB", "search_path": "a, b", "lock_timeout": "4s", "x": "2"}


def test_merge_order_user_over_session_over_url() -> None:
    url = "postgresql://u@h/db?options=-c%20work_mem%3D1MB"
    cfg = PoolConfig(url=url, session={"work_mem": "2MB"}, statement_timeout=7.0)
    assert libpq_options_for(cfg) == "-c work_mem=1MB -c work_mem=2MB -c statement_timeout=7000"
    cfg = PoolConfig(url=url, session={"work_mem": "2MB"},
                     driver_options={"options": "-c work_mem=3MB"})  # fmt: skip
    # driver_options' options replace the URL's (a connect keyword over a conninfo key)
    assert libpq_options_for(cfg) == "-c work_mem=2MB -c work_mem=3MB"


def test_application_name_in_options_takes_its_rank() -> None:
    opts = {"options": "-c application_name=from_opts"}
    assert pg_application_name(PoolConfig(url="postgresql://h/d", driver_options=opts)) == (
        "from_opts"
    )
    # from the URL's options: below session and the URL's own key
    url = "postgresql://h/d?options=-c%20application_name%3Dfrom_url_opts"
    assert pg_application_name(PoolConfig(url=url, name="p")) == "from_url_opts"
    assert pg_application_name(PoolConfig(url=url, session={"application_name": "s"})) == "s"


# -- on the server --------------------------------------------------------------------------


def _config(url: str, driver: str | None, **fields: Any) -> PoolConfig:
    name = f"pbopt_{uuid.uuid4().hex[:8]}"
    return PoolConfig(url=url, driver=driver, min_size=1, max_size=2, name=name, **fields)


async def _show(adapter: str, cfg: PoolConfig, names: tuple[str, ...] = SHOWN) -> dict[str, Any]:
    async with open_pool(cfg, adapter=adapter) as pool:
        entry = get_adapter(adapter).entry_points(pool)["handle"]
        async with entry() as run:
            return {n: await run(f"SELECT current_setting('{n}')") for n in names}


async def _stock_psycopg(url: str, **kw: Any) -> dict[str, Any]:
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True, **kw) as conn:
        out = {}
        for n in SHOWN:
            cur = await conn.execute(f"SELECT current_setting('{n}')")
            row = await cur.fetchone()
            assert row is not None
            out[n] = row[0]
        return out


async def _stock_aiopg(url: str, **kw: Any) -> dict[str, Any]:
    import aiopg

    async with aiopg.connect(url, **kw) as conn, conn.cursor() as cur:
        out = {}
        for n in SHOWN:
            await cur.execute(f"SELECT current_setting('{n}')")
            out[n] = (await cur.fetchone())[0]
        return out


async def _stock(adapter: str, driver: str | None, url: str, **kw: Any) -> dict[str, Any]:
    if "aiopg" in (adapter, driver):
        return await _stock_aiopg(url, **kw)
    return await _stock_psycopg(url, **kw)


def _with_query(url: str, query: str) -> str:
    return url + ("&" if "?" in url else "?") + query


@pytest.mark.asyncio
@pytest.mark.server
@pytest.mark.timeout(60)
@pytest.mark.parametrize(("adapter", "driver"), LIBPQ, ids=IDS)
async def test_driver_options_options_apply_as_stock_and_knobs_stay(
    pg_url: str, adapter: str, driver: str | None
) -> None:
    stock = await _stock(adapter, driver, pg_url, options=USER_OPTIONS)
    assert stock["work_mem"] == "3MB" and stock["search_path"] == "pb_user, public"
    assert stock["lock_timeout"] == "4s" and stock["statement_timeout"] == "0"
    session = {"idle_in_transaction_session_timeout": "9s"}
    cfg = _config(pg_url, driver, driver_options={"options": USER_OPTIONS},
                  statement_timeout=7.0, session=session)  # fmt: skip
    got = await _show(adapter, cfg, (*SHOWN, "idle_in_transaction_session_timeout"))
    # the user's options as stock, plus poolbridge's knobs and session beside them
    assert got == {**stock, "statement_timeout": "7s", "application_name": cfg.name,
                   "idle_in_transaction_session_timeout": "9s"}  # fmt: skip


@pytest.mark.asyncio
@pytest.mark.server
@pytest.mark.timeout(60)
@pytest.mark.parametrize(("adapter", "driver"), LIBPQ, ids=IDS)
async def test_url_options_apply_as_stock_and_knobs_stay(
    pg_url: str, adapter: str, driver: str | None
) -> None:
    url = _with_query(pg_url, "options=-c%20work_mem%3D3MB%20-c%20search_path%3Dpb_url")
    stock = await _stock(adapter, driver, url)
    assert stock["work_mem"] == "3MB" and stock["search_path"] == "pb_url"
    cfg = _config(url, driver, statement_timeout=7.0, session={"lock_timeout": "4s"})
    got = await _show(adapter, cfg)
    assert got == {**stock, "statement_timeout": "7s", "lock_timeout": "4s",
                   "application_name": cfg.name}  # fmt: skip


@pytest.mark.asyncio
@pytest.mark.server
@pytest.mark.timeout(60)
@pytest.mark.parametrize(("adapter", "driver"), LIBPQ, ids=IDS)
async def test_application_name_in_options_reaches_the_server(
    pg_url: str, adapter: str, driver: str | None
) -> None:
    opts = "-c application_name=pb_from_opts"
    stock = await _stock(adapter, driver, pg_url, options=opts)
    assert stock["application_name"] == "pb_from_opts"
    cfg = _config(pg_url, driver, driver_options={"options": opts}, statement_timeout=7.0)
    got = await _show(adapter, cfg, ("application_name", "statement_timeout"))
    assert got == {"application_name": "pb_from_opts", "statement_timeout": "7s"}


@pytest.mark.asyncio
@pytest.mark.server
@pytest.mark.timeout(60)
@pytest.mark.parametrize(("adapter", "driver"), LIBPQ, ids=IDS)
@pytest.mark.parametrize(
    ("knob", "mine", "setting", "theirs", "same", "shown"),
    [
        ("statement_timeout", 7.0, "statement_timeout", "60s", "7000ms", "7s"),
        ("isolation_level", "serializable", "default_transaction_isolation",
         r"read\ committed", "SERIALIZABLE", "serializable"),
    ],
)  # fmt: skip
async def test_an_option_that_disagrees_with_a_knob_is_refused(
    pg_url: str,
    adapter: str,
    driver: str | None,
    knob: str,
    mine: Any,
    setting: str,
    theirs: str,
    same: str,
    shown: str,
) -> None:
    cfg = _config(pg_url, driver, driver_options={"options": f"-c {setting}={theirs}"},
                  **{knob: mine})  # fmt: skip
    with pytest.raises(UnsupportedOptionError) as info:
        async with open_pool(cfg, adapter=adapter):
            pass
    text = str(info.value)
    assert knob in text and f"driver_options options -c {setting}=" in text, text
    # the same value written another way (``--name=`` spelling too) is no conflict
    opt = f"--{setting.replace('_', '-')}={same}"
    cfg = _config(pg_url, driver, driver_options={"options": opt}, **{knob: mine})
    assert await _show(adapter, cfg, (setting,)) == {setting: shown}


@pytest.mark.asyncio
@pytest.mark.server
@pytest.mark.timeout(60)
async def test_url_option_that_disagrees_with_a_knob_is_refused(pg_url: str) -> None:
    url = _with_query(pg_url, "options=-c%20statement_timeout%3D60s")
    for adapter, driver in LIBPQ:
        cfg = _config(url, driver, statement_timeout=7.0)
        with pytest.raises(UnsupportedOptionError, match=r"URL \?options= -c statement_timeout"):
            async with open_pool(cfg, adapter=adapter):
                pass


# -- SQLAlchemy's own connect_args ----------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.server
@pytest.mark.timeout(60)
async def test_sqlalchemy_connect_args_options_as_stock_and_knobs_stay(pg_url: str) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine as stock_create

    from poolbridge.adapters.sqlalchemy import close_engine, create_async_engine, warm_up

    async def show(engine: Any) -> dict[str, Any]:
        async with engine.connect() as conn:
            return {n: (await conn.exec_driver_sql(f"SHOW {n}")).scalar() for n in SHOWN}

    url = "postgresql+psycopg://" + pg_url.split("://", 1)[1]
    stock_engine = stock_create(url, connect_args={"options": USER_OPTIONS})
    try:
        stock = await show(stock_engine)
    finally:
        await stock_engine.dispose()
    assert stock["work_mem"] == "3MB" and stock["statement_timeout"] == "0"
    cfg = _config(pg_url, "psycopg", statement_timeout=7.0)
    engine = await warm_up(create_async_engine(cfg, connect_args={"options": USER_OPTIONS}))
    try:
        got = await show(engine)
    finally:
        await close_engine(engine)
    assert got == {**stock, "statement_timeout": "7s", "application_name": cfg.name}
    with pytest.raises(UnsupportedOptionError, match="connect_args options -c statement_timeout"):
        create_async_engine(cfg, connect_args={"options": "-c statement_timeout=1min"})


# -- asyncpg: a top-level application_name ---------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.server
@pytest.mark.timeout(60)
@pytest.mark.parametrize(("adapter", "driver"), [("asyncpg", None), ("sqlalchemy", "asyncpg")])
async def test_asyncpg_top_level_application_name_is_a_server_setting(
    pg_url: str, adapter: str, driver: str | None
) -> None:
    """asyncpg.connect has no ``application_name`` argument: driver_options' top-level one
    becomes the server setting, ahead of server_settings' own (the one ladder)."""
    opts = {"application_name": "pb_top", "server_settings": {"application_name": "pb_inner",
                                                             "work_mem": "3MB"}}  # fmt: skip
    cfg = _config(pg_url, driver, driver_options=opts, statement_timeout=7.0)
    got = await _show(adapter, cfg, ("application_name", "work_mem", "statement_timeout"))
    assert got == {"application_name": "pb_top", "work_mem": "3MB", "statement_timeout": "7s"}


# -- Tortoise's own server_settings ---------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.server
@pytest.mark.timeout(60)
async def test_tortoise_server_settings_options_are_dropped_as_stock_with_a_warning(
    pg_url: str,
) -> None:
    """Tortoise's psycopg client overwrites ``server_settings["options"]`` with its own
    search_path (stock): poolbridge keeps that, and says so instead of dropping it
    silently."""
    from poolbridge.errors import UnsupportedOptionWarning

    opts = {"server_settings": {"options": "-c work_mem=3MB"}}
    cfg = _config(pg_url, "psycopg", driver_options=opts, statement_timeout=7.0)
    with pytest.warns(UnsupportedOptionWarning, match=r"server_settings\['options'\]"):
        got = await _show("tortoise", cfg, ("work_mem", "statement_timeout"))
    assert got["statement_timeout"] == "7s" and got["work_mem"] != "3MB"
