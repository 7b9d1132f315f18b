"""SQLAlchemy on asyncpg: a user's own ``server_settings`` (create_async_engine's
``connect_args``, or ``driver_options``) reach the server as they would on a stock engine,
and poolbridge's knobs (application_name default, statement_timeout, session) stay beside
them: the dicts are merged key by key, never replaced. A user's setting that disagrees with
a PoolConfig knob is refused, naming both. Checked on the server (``SHOW``), against a stock
``create_async_engine`` given the same ``connect_args``."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.asyncio import create_async_engine as stock_create

from poolbridge import PoolConfig
from poolbridge.adapters.sqlalchemy import (
    close_engine,
    create_async_engine,
    native_arguments,
    warm_up,
)
from poolbridge.errors import UnsupportedOptionError

SHOWN = ("application_name", "statement_timeout", "work_mem", "search_path")


def _stock_url(pg_url: str) -> str:
    return "postgresql+asyncpg://" + pg_url.split("://", 1)[1]


async def _show(engine: AsyncEngine) -> dict[str, Any]:
    async with engine.connect() as conn:
        return {n: (await conn.exec_driver_sql(f"SHOW {n}")).scalar() for n in SHOWN}


async def _stock(pg_url: str, connect_args: dict[str, Any]) -> dict[str, Any]:
    engine = stock_create(_stock_url(pg_url), connect_args=connect_args)
    try:
        return await _show(engine)
    finally:
        await engine.dispose()


async def _ours(config: PoolConfig, **engine_kw: Any) -> dict[str, Any]:
    engine = await warm_up(create_async_engine(config, **engine_kw))
    try:
        return await _show(engine)
    finally:
        await close_engine(engine)


def _config(pg_url: str, **fields: Any) -> PoolConfig:
    fields.setdefault("name", f"pbsa_{uuid.uuid4().hex[:8]}")
    return PoolConfig(url=pg_url, driver="asyncpg", min_size=1, max_size=1, **fields)


def _user_settings(app: bool) -> dict[str, str]:
    settings = {"work_mem": "3MB", "search_path": "pb_user, public"}
    if app:
        settings["application_name"] = f"pbuser_{uuid.uuid4().hex[:8]}"
    return settings


@pytest.mark.asyncio
@pytest.mark.parametrize("app", [True, False], ids=["user-app-name", "no-app-name"])
@pytest.mark.parametrize("where", ["connect_args", "driver_options"])
async def test_user_server_settings_apply_as_stock_and_knobs_stay(
    pg_url: str, where: str, app: bool
) -> None:
    user = _user_settings(app)
    stock = await _stock(pg_url, {"server_settings": user})
    assert stock["work_mem"] == "3MB" and stock["statement_timeout"] == "0"  # stock: no knob
    if where == "connect_args":
        config = _config(pg_url, statement_timeout=7.0)
        got = await _ours(config, connect_args={"server_settings": user})
    else:
        config = _config(pg_url, statement_timeout=7.0, driver_options={"server_settings": user})
        got = await _ours(config)
    # the user's settings as stock, plus poolbridge's knob; the pool name only by default
    expected = {**stock, "statement_timeout": "7s"}
    if not app:
        assert stock["application_name"] != config.name
        expected["application_name"] = config.name
    assert got == expected


@pytest.mark.asyncio
async def test_connect_args_beat_driver_options_and_session_key_by_key(pg_url: str) -> None:
    config = _config(
        pg_url,
        statement_timeout=2.0,
        session={"search_path": "pb_session", "application_name": "from_session"},
        driver_options={"server_settings": {"work_mem": "5MB", "application_name": "from_opts"}},
    )
    got = await _ours(config, connect_args={"server_settings": {"work_mem": "6MB"}})
    assert got == {
        "application_name": "from_opts",  # driver_options beats session (every PG stack)
        "statement_timeout": "2s",
        "work_mem": "6MB",  # create_async_engine's connect_args: the last word
        "search_path": "pb_session",
    }


@pytest.mark.asyncio
async def test_connect_args_keep_poolbridges_other_driver_keys(pg_url: str) -> None:
    """The user's connect_args add to poolbridge's (timeout, command_timeout ...), as
    stock SQLAlchemy adds them to the URL's: the engine's connect gets both."""
    config = _config(pg_url, statement_timeout=1.0, connect_timeout=3.0)
    engine = create_async_engine(config, connect_args={"server_settings": {"work_mem": "3MB"}})
    try:
        seen: dict[str, Any] = {}

        @event.listens_for(engine.sync_engine, "do_connect", insert=True)
        def record(dialect: Any, rec: Any, cargs: Any, kw: dict[str, Any]) -> None:
            seen.update(kw)

        await _show(engine)
        assert seen["timeout"] == 3.0 and seen["command_timeout"] == pytest.approx(1.5)
        assert seen["server_settings"]["work_mem"] == "3MB"
        assert seen["server_settings"]["statement_timeout"] == "1000"
    finally:
        await close_engine(engine)


@pytest.mark.parametrize("where", ["connect_args", "driver_options", "native_arguments"])
@pytest.mark.parametrize(
    ("knob", "setting", "value", "mine"),
    [
        ("statement_timeout", "statement_timeout", "60s", 7.0),
        ("isolation_level", "default_transaction_isolation", "read committed", "serializable"),
    ],
)
def test_a_setting_that_disagrees_with_a_knob_is_refused(
    pg_url: str, where: str, knob: str, setting: str, value: str, mine: Any
) -> None:
    user = {"server_settings": {setting: value}}
    fields: dict[str, Any] = {knob: mine}
    with pytest.raises(UnsupportedOptionError) as info:
        if where == "connect_args":
            create_async_engine(_config(pg_url, **fields), connect_args=user)
        elif where == "driver_options":
            create_async_engine(_config(pg_url, driver_options=user, **fields))
        else:
            native_arguments(_config(pg_url, driver_options=user, **fields))
    text = str(info.value)
    assert knob in text and setting in text and repr(value) in text, text


@pytest.mark.asyncio
@pytest.mark.parametrize("same", ["7000", "7s", "7000ms", 7000])
async def test_the_same_statement_timeout_in_both_places_is_accepted(
    pg_url: str, same: Any
) -> None:
    config = _config(pg_url, statement_timeout=7.0)
    got = await _ours(config, connect_args={"server_settings": {"statement_timeout": str(same)}})
    assert got["statement_timeout"] == "7s"
