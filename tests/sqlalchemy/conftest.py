"""Fixtures for the SQLAlchemy adapter tests: one target per backend+driver, and a
server-side view of a pool's connections by the ids its on_connect recorded."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio

from poolbridge.config.model import PoolConfig


class Server:
    """Admin connection that sees and kills connections by server id."""

    def __init__(self, backend: str, url: str) -> None:
        self.backend = backend
        self.url = url
        self._conn: Any = None

    async def open(self) -> None:
        if self.backend == "postgresql":
            import asyncpg

            self._conn = await asyncpg.connect(self.url)
        else:
            import aiomysql

            self._conn = await aiomysql.connect(
                host="127.0.0.1", port=3306, user="root", password="", db="test", autocommit=True
            )

    async def close(self) -> None:
        if self._conn is not None:
            if self.backend == "postgresql":
                await self._conn.close()
            else:
                self._conn.close()

    async def live(self, ids: Iterable[Any]) -> set[int]:
        """The ids among ``ids`` that still have a server connection."""
        wanted = sorted({int(i) for i in ids if i is not None})
        if not wanted:
            return set()
        if self.backend == "postgresql":
            rows = await self._conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE pid = ANY($1::int[])", wanted
            )
            return {r["pid"] for r in rows}
        async with self._conn.cursor() as cur:
            marks = ",".join(["%s"] * len(wanted))
            await cur.execute(
                f"SELECT ID FROM information_schema.PROCESSLIST WHERE ID IN ({marks})", wanted
            )
            return {int(r[0]) for r in await cur.fetchall()}

    async def kill(self, server_id: Any) -> None:
        if self.backend == "postgresql":
            await self._conn.execute("SELECT pg_terminate_backend($1)", int(server_id))
        else:
            async with self._conn.cursor() as cur:
                await cur.execute(f"KILL {int(server_id)}")

    async def pg_fetchval(self, sql: str, *args: Any) -> Any:
        """One value from the PostgreSQL admin connection."""
        assert self.backend == "postgresql"
        return await self._conn.fetchval(sql, *args)

    async def execute(self, sql: str) -> None:
        if self.backend == "postgresql":
            await self._conn.execute(sql)
        else:
            async with self._conn.cursor() as cur:
                await cur.execute(sql)


@dataclass
class Target:
    name: str
    backend: str
    driver: str
    url: str
    server: Server | None

    def config(self, **kw: Any) -> PoolConfig:
        kw.setdefault("name", f"pbtest-{uuid.uuid4().hex[:8]}")
        return PoolConfig(url=self.url, driver=self.driver, **kw)

    def sleep_sql(self, seconds: float) -> str:
        if self.backend == "postgresql":
            return f"SELECT pg_sleep({seconds})"
        if self.backend == "mysql":
            return f"SELECT SLEEP({seconds})"
        return "SELECT 1"


TARGETS = ["pg-asyncpg", "pg-psycopg", "mysql-aiomysql", "mysql-asyncmy", "sqlite-aiosqlite"]
SERVER_TARGETS = TARGETS[:4]


async def _target(request: pytest.FixtureRequest) -> AsyncIterator[Target]:
    name: str = request.param
    backend, driver = name.split("-")
    if backend == "pg":
        url = request.getfixturevalue("pg_url")
        server: Server | None = Server("postgresql", url)
        backend = "postgresql"
    elif backend == "mysql":
        url = request.getfixturevalue("mysql_url")
        server = Server("mysql", url)
    else:
        url = request.getfixturevalue("sqlite_url")
        server = None
    if server is not None:
        await server.open()
    try:
        yield Target(name, backend, driver, url, server)
    finally:
        if server is not None:
            await server.close()


@pytest_asyncio.fixture(params=TARGETS)
async def target(request: pytest.FixtureRequest) -> AsyncIterator[Target]:
    async for t in _target(request):
        yield t


@pytest_asyncio.fixture(params=SERVER_TARGETS)
async def server_target(request: pytest.FixtureRequest) -> AsyncIterator[Target]:
    async for t in _target(request):
        yield t


async def eventually(check: Any, timeout: float = 5.0, interval: float = 0.05) -> Any:
    """Poll the async ``check`` until it returns a truthy value; return the last value."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    value = await check()
    while not value and loop.time() < end:
        await asyncio.sleep(interval)
        value = await check()
    return value
