"""PostgreSQL driver keys reach the server as the driver gives them stock, on every driver
and every ORM path built on them: ``application_name`` is the user's — ``driver_options``
(asyncpg: its ``server_settings``), then ``session``, then the URL query — and the pool
name only by default; a user's asyncpg ``server_settings`` are merged with poolbridge's
settings key by key, and one that disagrees with a PoolConfig knob is refused; the URL's
libpq ``options`` apply next to poolbridge's own startup settings. Checked on the server
(``current_setting`` of the session), not by "it connected"."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from poolbridge import PoolConfig, open_pool
from poolbridge.adapters.registry import get_adapter
from poolbridge.errors import UnsupportedOptionError

pytestmark = [pytest.mark.asyncio, pytest.mark.server, pytest.mark.timeout(60)]

#: (adapter, driver): every PostgreSQL path, those whose connections poolbridge builds from
#: a driver in drivers/ and SQLAlchemy (which builds its own connect_args by the same rule)
STACKS = [
    ("asyncpg", None),
    ("aiopg", None),
    ("psycopg", None),
    ("tortoise", "asyncpg"),
    ("tortoise", "psycopg"),
    ("peewee_async", "aiopg"),
    ("peewee_async", "psycopg"),
    ("sqlalchemy", "asyncpg"),
    ("sqlalchemy", "psycopg"),
]
IDS = [f"{a}-{d}" if d else a for a, d in STACKS]
#: the stacks whose driver is asyncpg: driver_options carry a ``server_settings`` dict
ASYNCPG = {("asyncpg", None), ("tortoise", "asyncpg"), ("sqlalchemy", "asyncpg")}


def _with_query(url: str, query: str) -> str:
    return url + ("&" if "?" in url else "?") + query


async def _settings(adapter: str, cfg: PoolConfig, *names: str) -> list[Any]:
    async with open_pool(cfg, adapter=adapter) as pool:
        entry = get_adapter(adapter).entry_points(pool)["handle"]
        async with entry() as run:
            return [await run(f"SELECT current_setting('{name}')") for name in names]


def _config(url: str, driver: str | None, **fields: Any) -> PoolConfig:
    name = f"pbapp_{uuid.uuid4().hex[:8]}"
    return PoolConfig(url=url, driver=driver, min_size=1, max_size=2, name=name, **fields)


@pytest.mark.parametrize(("adapter", "driver"), STACKS, ids=IDS)
async def test_pool_name_is_the_default(pg_url: str, adapter: str, driver: str | None) -> None:
    cfg = _config(pg_url, driver)
    assert await _settings(adapter, cfg, "application_name") == [cfg.name]


@pytest.mark.parametrize(("adapter", "driver"), STACKS, ids=IDS)
async def test_url_query_application_name_wins(
    pg_url: str, adapter: str, driver: str | None
) -> None:
    cfg = _config(_with_query(pg_url, "application_name=from_url"), driver)
    assert await _settings(adapter, cfg, "application_name") == ["from_url"]


@pytest.mark.parametrize(("adapter", "driver"), STACKS, ids=IDS)
async def test_session_application_name_wins(pg_url: str, adapter: str, driver: str | None) -> None:
    cfg = _config(pg_url, driver, session={"application_name": "from_session",
                                           "search_path": "pb_session, public"})  # fmt: skip
    got = await _settings(adapter, cfg, "application_name", "search_path")
    assert got == ["from_session", "pb_session, public"]


@pytest.mark.parametrize(("adapter", "driver"), STACKS[:3], ids=IDS[:3])
async def test_url_libpq_options_apply_with_poolbridges_settings(
    pg_url: str, adapter: str, driver: str | None
) -> None:
    url = _with_query(pg_url, "options=-c%20search_path%3Dpb_from_url")
    cfg = _config(url, driver, statement_timeout=7.0)
    got = await _settings(adapter, cfg, "search_path", "statement_timeout", "application_name")
    assert got == ["pb_from_url", "7s", cfg.name]


@pytest.mark.parametrize(
    ("adapter", "driver", "options"),
    [
        ("asyncpg", None, {"server_settings": {"application_name": "from_driver"}}),
        ("aiopg", None, {"application_name": "from_driver"}),
        ("psycopg", None, {"application_name": "from_driver"}),
        ("sqlalchemy", "asyncpg", {"server_settings": {"application_name": "from_driver"}}),
        ("sqlalchemy", "psycopg", {"application_name": "from_driver"}),
    ],
)
async def test_driver_options_application_name_wins(
    pg_url: str, adapter: str, driver: str | None, options: dict[str, Any]
) -> None:
    cfg = _config(pg_url, driver, driver_options=options, session={"search_path": "pb_drv"})
    got = await _settings(adapter, cfg, "application_name", "search_path")
    assert got == ["from_driver", "pb_drv"]  # asyncpg: poolbridge's settings kept beside


@pytest.mark.parametrize(("adapter", "driver"), STACKS, ids=IDS)
async def test_session_application_name_beats_the_url(
    pg_url: str, adapter: str, driver: str | None
) -> None:
    url = _with_query(pg_url, "application_name=from_url")
    cfg = _config(url, driver, session={"application_name": "from_session"})
    assert await _settings(adapter, cfg, "application_name") == ["from_session"]


@pytest.mark.parametrize(("adapter", "driver"), STACKS, ids=IDS)
async def test_the_whole_ladder_and_poolbridges_knobs_beside(
    pg_url: str, adapter: str, driver: str | None
) -> None:
    """application_name set everywhere at once: driver_options win over session, URL and
    pool name; the user's other driver settings (asyncpg's server_settings: work_mem) and
    poolbridge's knobs (statement_timeout, session) all reach the server beside it."""
    url = _with_query(pg_url, "application_name=from_url")
    if (adapter, driver) in ASYNCPG:
        opts = {"server_settings": {"application_name": "from_driver", "work_mem": "3MB"}}
    else:
        opts = {"application_name": "from_driver"}
    session = {"application_name": "from_session", "search_path": "pb_ladder"}
    cfg = _config(url, driver, driver_options=opts, session=session, statement_timeout=7.0)
    names = ["application_name", "search_path", "statement_timeout"]
    expected = ["from_driver", "pb_ladder", "7s"]
    if (adapter, driver) in ASYNCPG:
        names.append("work_mem")
        expected.append("3MB")
    assert await _settings(adapter, cfg, *names) == expected


@pytest.mark.parametrize(("adapter", "driver"), [("asyncpg", None), ("sqlalchemy", "asyncpg")])
@pytest.mark.parametrize(
    ("knob", "mine", "setting", "theirs"),
    [
        ("statement_timeout", 7.0, "statement_timeout", "60s"),
        ("isolation_level", "serializable", "default_transaction_isolation", "read committed"),
    ],
)
async def test_a_driver_setting_that_disagrees_with_a_knob_is_refused(
    pg_url: str,
    adapter: str,
    driver: str | None,
    knob: str,
    mine: Any,
    setting: str,
    theirs: str,
) -> None:
    opts = {"server_settings": {setting: theirs}}
    cfg = _config(pg_url, driver, driver_options=opts, **{knob: mine})
    with pytest.raises(UnsupportedOptionError) as info:
        async with open_pool(cfg, adapter=adapter):
            pass
    text = str(info.value)
    assert knob in text and f"server_settings['{setting}']={theirs!r}" in text, text
    # the same value in both places is no conflict
    same = "7s" if knob == "statement_timeout" else "SERIALIZABLE"
    cfg = _config(pg_url, driver, driver_options={"server_settings": {setting: same}},
                  **{knob: mine})  # fmt: skip
    want = "7s" if knob == "statement_timeout" else "serializable"
    assert await _settings(adapter, cfg, setting) == [want]
