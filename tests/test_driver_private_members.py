"""The private connection members the driver shims read, on live connections.

drivers/aiomysql.py, drivers/asyncmy.py and drivers/aiosqlite.py look inside a connection to
tell, without a round trip, whether the server hung up, to cut a stalled link, to bound a
read and to close a SQLite connection whose worker is stuck (docs/internals.md "Private
members used"). When a driver release renames one, this test names it.
"""

from __future__ import annotations

import asyncio
import inspect
import sqlite3

import pytest

pytestmark = pytest.mark.asyncio


def _missing(member: str, driver: str, used_by: str) -> str:
    return (
        f"{driver} no longer has the private member {member!r} that poolbridge's {used_by} "
        "reads: adapt the shim before lifting the cap in pyproject.toml"
    )


async def test_aiomysql_members(mysql_url: str) -> None:
    import aiomysql

    from poolbridge import PoolConfig

    dbu = PoolConfig(url=mysql_url).database_url
    conn = await aiomysql.connect(
        host=dbu.host or "127.0.0.1", port=dbu.port or 3306, user=dbu.username,
        password=dbu.password or "", db=dbu.database,
    )  # fmt: skip
    try:
        reader = getattr(conn, "_reader", None)
        assert isinstance(reader, asyncio.StreamReader), _missing(
            "_reader", "aiomysql", "drivers/state.py aiomysql_is_closed()"
        )
        # ``_writer is None`` is what the public ``closed`` property returns
        assert getattr(conn, "_writer", None) is not None and not conn.closed, _missing(
            "_writer", "aiomysql", "drivers/state.py aiomysql_is_closed()/aiomysql_reusable()"
        )
        writer = getattr(conn, "_writer", None)
        assert writer is not None and hasattr(writer.transport, "abort"), _missing(
            "_writer.transport", "aiomysql", "drivers/aiomysql.py sever()"
        )
        read = getattr(conn, "_read_bytes", None)
        assert read is not None and inspect.iscoroutinefunction(read), _missing(
            "_read_bytes", "aiomysql", "drivers/aiomysql.py statement backstop"
        )
    finally:
        conn.close()
    assert conn._writer is None and conn.closed


async def test_asyncmy_members(mysql_url: str) -> None:
    import asyncmy

    from poolbridge import PoolConfig

    dbu = PoolConfig(url=mysql_url).database_url
    conn = await asyncmy.connect(
        host=dbu.host or "127.0.0.1", port=dbu.port or 3306, user=dbu.username,
        password=dbu.password or "", database=dbu.database,
    )  # fmt: skip
    try:
        transport = getattr(conn, "_transport", None)
        assert isinstance(transport, asyncio.BaseTransport), _missing(
            "_transport", "asyncmy", "drivers/state.py asyncmy_is_closed() and sever()"
        )
        assert not transport.is_closing()
        # what the public ``connected`` property returns, read without the property call
        assert getattr(conn, "_connected", None) is True, _missing(
            "_connected", "asyncmy", "drivers/state.py asyncmy_is_closed()/asyncmy_reusable()"
        )
    finally:
        conn.close()
    assert conn._connected is False and conn.connected is False


async def test_aiosqlite_members() -> None:
    import aiosqlite

    conn = await aiosqlite.connect(":memory:")
    try:
        assert isinstance(getattr(conn, "_connection", None), sqlite3.Connection), _missing(
            "_connection",
            "aiosqlite",
            "drivers/state.py aiosqlite_*(), drivers/aiosqlite.py terminate()",
        )
        assert getattr(conn, "_running", None) is True, _missing(
            "_running",
            "aiosqlite",
            "drivers/state.py aiosqlite_*(), drivers/aiosqlite.py terminate()",
        )
        assert hasattr(getattr(conn, "_tx", None), "put_nowait"), _missing(
            "_tx", "aiosqlite", "drivers/aiosqlite.py terminate()"
        )
    finally:
        await conn.close()
