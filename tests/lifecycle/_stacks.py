"""Every adapter x driver x backend the lifecycle tests run on, and what they need of it.

A stack opens through :func:`poolbridge.open_pool`; its connections are identified by the
server ids the pool recorded (backend pids / CONNECTION_ID()s), and :class:`Server` checks
them server-side with an admin connection of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pytest

from poolbridge import open_pool
from poolbridge.adapters.registry import get_adapter
from poolbridge.config.model import PoolConfig, RetryPolicy
from poolbridge.engine.handle import EnginePool
from poolbridge.pool.handle import Pool
from poolbridge.testing.admin import Admin, open_admin

URL_FIXTURE = {"postgresql": "pg_url", "mysql": "mysql_url", "sqlite": "sqlite_url"}


@dataclass(frozen=True)
class Stack:
    adapter: str
    backend: str
    driver: str

    @property
    def id(self) -> str:
        return f"{self.adapter}-{self.driver}-{self.backend}"


def _tortoise_mysql_driver() -> str:
    from poolbridge.adapters.tortoise._translate import mysql_driver_of_tortoise

    return mysql_driver_of_tortoise()


STACKS: tuple[Stack, ...] = (
    Stack("asyncpg", "postgresql", "asyncpg"),
    Stack("aiopg", "postgresql", "aiopg"),
    Stack("aiomysql", "mysql", "aiomysql"),
    Stack("asyncmy", "mysql", "asyncmy"),
    Stack("aiosqlite", "sqlite", "aiosqlite"),
    Stack("sqlalchemy", "postgresql", "asyncpg"),
    Stack("sqlalchemy", "postgresql", "psycopg"),
    Stack("sqlalchemy", "mysql", "aiomysql"),
    Stack("sqlalchemy", "sqlite", "aiosqlite"),
    Stack("psycopg", "postgresql", "psycopg"),
    Stack("tortoise", "postgresql", "asyncpg"),
    Stack("tortoise", "postgresql", "psycopg"),
    Stack("tortoise", "mysql", _tortoise_mysql_driver()),
    Stack("tortoise", "sqlite", "aiosqlite"),
    Stack("peewee_async", "postgresql", "aiopg"),
    Stack("peewee_async", "postgresql", "psycopg"),
    Stack("peewee_async", "mysql", "aiomysql"),
    Stack("peewee_async", "sqlite", "aiosqlite"),
)

PARAMS = [pytest.param(s, id=s.id) for s in STACKS]


def url_for(request: pytest.FixtureRequest, stack: Stack) -> str:
    url: str = request.getfixturevalue(URL_FIXTURE[stack.backend])
    return url


def config(stack: Stack, url: str, **fields: Any) -> PoolConfig:
    fields.setdefault("min_size", 2)
    fields.setdefault("max_size", 4)
    fields.setdefault("acquire_timeout", 10.0)
    fields.setdefault("max_idle", None)
    fields.setdefault("retry", RetryPolicy(attempts=2, initial_backoff=0.01, max_backoff=0.05))
    fields.setdefault("name", f"pb-lc-{uuid.uuid4().hex[:10]}")
    return PoolConfig(url=url, driver=stack.driver, **fields)


async def open_stack(stack: Stack, cfg: PoolConfig) -> Pool[Any]:
    pool: Pool[Any] = await open_pool(cfg, adapter=stack.adapter)
    return pool


async def scalar(stack: Stack, conn: Any, sql: str) -> Any:
    return await get_adapter(stack.adapter).fetch_scalar(conn, sql)


def pool_ids(pool: Pool[Any]) -> set[Any]:
    """Server ids of every open connection of ``pool``, as the pool recorded them."""
    if isinstance(pool, EnginePool):
        return set(pool.engine.server_ids())
    if pool.adapter == "sqlalchemy":
        return set(pool.state.live_ids.values())  # type: ignore[attr-defined]
    if pool.adapter == "psycopg":
        return set(pool.native.pb_server_ids())
    return set(pool.server_ids())  # type: ignore[attr-defined]


class Server:
    """Server-side view: the conformance suite's admin connection
    (:func:`poolbridge.testing.admin.open_admin`); SQLite has no server, so nothing is alive."""

    def __init__(self, stack: Stack, url: str) -> None:
        self.stack = stack
        self.url = url
        self._admin: Admin | None = None

    async def __aenter__(self) -> Server:
        if self.stack.backend != "sqlite":
            self._admin = await open_admin(self.url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._admin is not None:
            await self._admin.close()

    async def execute(self, sql: str) -> None:
        assert self._admin is not None
        await self._admin.execute(sql)

    async def alive(self, ids: Iterable[Any]) -> set[int]:
        """The ids among ``ids`` the server still has (empty for SQLite: no server)."""
        if self._admin is None:
            return set()
        return await self._admin.alive(i for i in ids if isinstance(i, int))
