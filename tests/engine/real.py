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

from poolbridge.adapters.registry import get_adapter
from poolbridge.config.model import PoolConfig, RetryPolicy
from poolbridge.engine.handle import EnginePool
from poolbridge.pool.hooks import Hooks
from poolbridge.testing.admin import Admin, open_admin

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
    """Server-side view of a backend: the conformance suite's admin connection
    (:func:`poolbridge.testing.admin.open_admin`); SQLite has no server, so nothing is alive."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._admin: Admin | None = None

    async def __aenter__(self) -> Server:
        if self.has_server:
            self._admin = await open_admin(self.target.url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._admin is not None:
            await self._admin.close()

    @property
    def has_server(self) -> bool:
        return self.target.backend != "sqlite"

    async def alive(self, ids: Iterable[int | str | None]) -> set[int]:
        if self._admin is None:
            return set()
        return await self._admin.alive(ids)

    async def kill(self, ident: int | str | None) -> None:
        assert ident is not None and self._admin is not None
        await self._admin.kill(ident)
