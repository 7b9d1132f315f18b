"""Helpers for engine tests on the real drivers: open pools, run SQL, look server-side.

Server-side facts identify the pool's connections by the ids the engine recorded
(PostgreSQL backend pids, MariaDB CONNECTION_ID()s), never by user name.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pytest

from poolbridge.core.config import PoolConfig, RetryPolicy
from poolbridge.core.engine_pool import EnginePool
from poolbridge.core.hooks import Hooks
from poolbridge.core.registry import get_adapter

ADAPTERS = ("asyncpg", "aiopg", "aiomysql", "asyncmy", "aiosqlite")
BACKEND = {
    "asyncpg": "postgresql",
    "aiopg": "postgresql",
    "aiomysql": "mysql",
    "asyncmy": "mysql",
    "aiosqlite": "sqlite",
}
URL_FIXTURE = {"postgresql": "pg_url", "mysql": "mysql_url", "sqlite": "sqlite_url"}


@dataclass
class Target:
    adapter: str
    url: str

    @property
    def backend(self) -> str:
        return BACKEND[self.adapter]

    def config(self, **fields: Any) -> PoolConfig:
        fields.setdefault("min_size", 1)
        fields.setdefault("max_size", 3)
        fields.setdefault("acquire_timeout", 10.0)
        fields.setdefault("retry", RetryPolicy(attempts=2, initial_backoff=0.01, max_backoff=0.05))
        fields.setdefault("name", f"pbeng-{uuid.uuid4().hex[:10]}")
        return PoolConfig(url=fields.pop("url", self.url), **fields)

    async def open(self, hooks: Hooks | None = None, **fields: Any) -> EnginePool:
        pool = await get_adapter(self.adapter).open(self.config(**fields), hooks)
        assert isinstance(pool, EnginePool)
        return pool

    async def scalar(self, conn: Any, sql: str) -> Any:
        return await get_adapter(self.adapter).fetch_scalar(conn, sql)

    async def execute(self, conn: Any, sql: str) -> None:
        if self.adapter == "asyncpg":
            await conn.execute(sql)
        elif self.adapter == "aiosqlite":
            await (await conn.execute(sql)).close()
        else:
            async with conn.cursor() as cur:
                await cur.execute(sql)

    async def begin(self, conn: Any) -> None:
        if self.adapter in ("aiomysql", "asyncmy"):
            await conn.begin()
        else:
            await self.execute(conn, "BEGIN")


def target_for(request: pytest.FixtureRequest, adapter: str) -> Target:
    url = request.getfixturevalue(URL_FIXTURE[BACKEND[adapter]])
    return Target(adapter, url)


class Server:
    """Server-side view of a backend (admin connection of its own)."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._conn: Any = None

    async def __aenter__(self) -> Server:
        if self.target.backend == "postgresql":
            import asyncpg

            self._conn = await asyncpg.connect(self.target.url)
        elif self.target.backend == "mysql":
            import aiomysql

            self._conn = await aiomysql.connect(
                host="127.0.0.1", port=3306, user="root", password="", db="test", autocommit=True
            )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._conn is None:
            return
        if self.target.backend == "postgresql":
            await self._conn.close()
        else:
            self._conn.close()

    @property
    def has_server(self) -> bool:
        return self.target.backend != "sqlite"

    async def alive(self, ids: Iterable[int | str | None]) -> set[int]:
        wanted = sorted({int(i) for i in ids if i is not None})
        if not wanted or not self.has_server:
            return set()
        if self.target.backend == "postgresql":
            rows = await self._conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE pid = ANY($1::int[])", wanted
            )
            return {r["pid"] for r in rows}
        async with self._conn.cursor() as cur:
            marks = ",".join(str(i) for i in wanted)
            await cur.execute(
                f"SELECT ID FROM information_schema.PROCESSLIST WHERE ID IN ({marks})"
            )
            return {int(r[0]) for r in await cur.fetchall()}

    async def kill(self, ident: int | str | None) -> None:
        assert ident is not None
        if self.target.backend == "postgresql":
            await self._conn.fetchval("SELECT pg_terminate_backend($1)", int(ident))
        else:
            async with self._conn.cursor() as cur:
                await cur.execute(f"KILL {int(ident)}")
