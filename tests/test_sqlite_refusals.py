"""Every SQLite stack refuses a connect_timeout, a password or statement_cache=False set
explicitly (UnsupportedOptionError naming the field) instead of dropping it, and says
nothing about them when they are left at their defaults."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from poolbridge import PoolConfig, open_pool
from poolbridge.adapters.registry import get_adapter
from poolbridge.errors import AdapterNotAvailable, UnsupportedOptionError, UnsupportedOptionWarning

pytestmark = pytest.mark.asyncio

ADAPTERS = ("aiosqlite", "sqlalchemy", "tortoise", "peewee_async")
SECRET = "s3cret-not-for-logs"
SET = {
    "connect_timeout": 2.5,
    "password": SECRET,
    "statement_cache": False,
}


def _available(adapter: str) -> None:
    try:
        get_adapter(adapter).check_available()
    except AdapterNotAvailable as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("memory", [False, True], ids=["file", "memory"])
@pytest.mark.parametrize("field", sorted(SET))
@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_explicit_knob_is_refused(
    adapter: str, field: str, memory: bool, sqlite_url: str
) -> None:
    _available(adapter)
    url = "sqlite:///:memory:" if memory else sqlite_url
    cfg = PoolConfig(url=url, min_size=1, max_size=1, **{field: SET[field]})
    with pytest.raises(UnsupportedOptionError) as info:
        pool = await open_pool(cfg, adapter=adapter)
        await pool.close()  # pragma: no cover - reached only when the knob was dropped
    assert field in str(info.value)
    assert SECRET not in str(info.value)


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_defaults_are_quiet(adapter: str, sqlite_url: str) -> None:
    _available(adapter)
    cfg = PoolConfig(url=sqlite_url, min_size=1, max_size=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pool: Any = await open_pool(cfg, adapter=adapter)
        try:
            async with pool.acquire() as conn:
                assert await get_adapter(adapter).fetch_scalar(conn, "SELECT 1") == 1
        finally:
            await pool.close()
    about = [
        str(w.message)
        for w in caught
        if issubclass(w.category, UnsupportedOptionWarning)
        and any(f"{k}=" in str(w.message) for k in SET)
    ]
    assert about == []


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_rotate_with_a_password_is_refused(adapter: str, sqlite_url: str) -> None:
    """rotate(password=) on SQLite refuses as open() does, and the pool keeps serving with
    the connections it had (nothing was replaced for a knob that cannot apply)."""
    _available(adapter)
    cfg = PoolConfig(url=sqlite_url, min_size=1, max_size=2)
    pool: Any = await open_pool(cfg, adapter=adapter)
    try:
        before = pool.stats()["connection.created"]
        with pytest.raises(UnsupportedOptionError) as info:
            await pool.rotate(password=SECRET)
        assert "password" in str(info.value) and SECRET not in str(info.value)
        async with pool.acquire() as conn:
            assert await get_adapter(adapter).fetch_scalar(conn, "SELECT 1") == 1
        assert pool.stats()["connection.created"] == before
        await pool.rotate()  # without a password: replaces the connections, allowed
    finally:
        await pool.close()
