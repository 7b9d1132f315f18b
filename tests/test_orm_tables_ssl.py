"""Tortoise and peewee-async list ``ssl`` and ``driver_options`` in their translation tables
(their shims and psycopg conninfo honour both), refuse what a stack cannot honour, and the
pages show it."""

from __future__ import annotations

import ssl

import pytest

from poolbridge import PoolConfig
from poolbridge.adapters import peewee_async, tortoise
from poolbridge.errors import UnsupportedOptionError

PG = "postgresql://app@127.0.0.1:5432/test"
MY = "mysql://app@127.0.0.1:3306/test"
COLUMNS = [
    (tortoise.adapter, PG, "asyncpg"),
    (tortoise.adapter, PG, "psycopg"),
    (tortoise.adapter, MY, None),
    (tortoise.adapter, "sqlite:////tmp/pb-tables.db", "aiosqlite"),
    (peewee_async.adapter, PG, "aiopg"),
    (peewee_async.adapter, PG, "psycopg"),
    (peewee_async.adapter, MY, "aiomysql"),
    (peewee_async.adapter, "sqlite:////tmp/pb-tables.db", "aiosqlite"),
]


@pytest.mark.parametrize(("adapter", "url", "driver"), COLUMNS)
def test_driver_options_and_ssl_are_claimed(adapter: object, url: str, driver: str | None) -> None:
    cfg = PoolConfig(url=url, driver=driver, ssl="require", driver_options={"x": 1})
    t = adapter.translate(cfg)  # type: ignore[attr-defined]
    assert "driver_options" in t.emulated, t
    if url.startswith("sqlite"):
        assert "ssl" in t.unsupported and "ssl" not in t.emulated
    else:
        assert "ssl" in t.emulated and "ssl" not in t.unsupported


@pytest.mark.parametrize("adapter", [peewee_async.adapter])
def test_psycopg_refuses_an_ssl_context(adapter: object) -> None:
    cfg = PoolConfig(url=PG, driver="psycopg", ssl=ssl.create_default_context())
    t = adapter.translate(cfg)  # type: ignore[attr-defined]
    assert "ssl" in t.unsupported and "ssl" not in t.emulated


def test_tortoise_psycopg_takes_an_ssl_context_as_stock_and_says_what_it_drops() -> None:
    # stock Tortoise reduces the context to an sslmode and drops it: accepted, with a warning
    from poolbridge.errors import UnsupportedOptionWarning

    cfg = PoolConfig(url=PG, driver="psycopg", ssl=ssl.create_default_context())
    t = tortoise.adapter.translate(cfg)
    assert "ssl" in t.emulated and "ssl" not in t.unsupported
    with pytest.warns(UnsupportedOptionWarning, match="drops the context"):
        tortoise.tortoise_config(cfg)


def test_tortoise_memory_refuses_driver_options() -> None:
    cfg = PoolConfig(url="sqlite:///:memory:", max_size=1, driver_options={"x": 1})
    t = tortoise.adapter.translate(cfg)
    assert "driver_options" in t.unsupported
    from poolbridge.adapters.base import enforce

    with pytest.raises(UnsupportedOptionError, match="driver_options"):
        enforce("tortoise", cfg, t)


def test_pages_show_the_rows() -> None:
    for table in (tortoise.doc_table(), peewee_async.doc_table()):
        assert "| `ssl` |" in table and "| `driver_options` |" in table
