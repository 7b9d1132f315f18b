"""PostgreSQL driver keys reach the server as the driver gives them stock, on every driver
and every ORM path built on them: ``application_name`` from the URL query, ``session`` or
``driver_options`` wins over the pool name (only the default), and the URL's libpq
``options`` apply next to poolbridge's own startup settings. Checked on the server
(``current_setting`` of the session), not by "it connected"."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from poolbridge import PoolConfig, open_pool
from poolbridge.adapters.registry import get_adapter

pytestmark = [pytest.mark.asyncio, pytest.mark.server, pytest.mark.timeout(60)]

#: (adapter, driver): every PostgreSQL path whose connections poolbridge builds from a
#: driver in drivers/ (SQLAlchemy builds its own connect_args)
STACKS = [
    ("asyncpg", None),
    ("aiopg", None),
    ("psycopg", None),
    ("tortoise", "asyncpg"),
    ("tortoise", "psycopg"),
    ("peewee_async", "aiopg"),
    ("peewee_async", "psycopg"),
]
IDS = [f"{a}-{d}" if d else a for a, d in STACKS]


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
    ("adapter", "options"),
    [
        ("asyncpg", {"server_settings": {"application_name": "from_driver"}}),
        ("aiopg", {"application_name": "from_driver"}),
        ("psycopg", {"application_name": "from_driver"}),
    ],
)
async def test_driver_options_application_name_wins(
    pg_url: str, adapter: str, options: dict[str, Any]
) -> None:
    cfg = _config(pg_url, None, driver_options=options, session={"search_path": "pb_drv"})
    got = await _settings(adapter, cfg, "application_name", "search_path")
    assert got == ["from_driver", "pb_drv"]  # asyncpg: poolbridge's settings kept beside
