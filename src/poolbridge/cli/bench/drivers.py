"""The driver stacks of ``poolbridge bench``: psycopg and the engine-backed raw drivers.

Each opener takes a variant and yields :class:`Ops` on a freshly opened pool of max_size
10, closing it on exit:

- ``poolbridge``: ``poolbridge.open_pool(PoolConfig(...), adapter=...)``;
- ``hand``: the driver's pool configured by hand with its own API, with the values that
  PoolConfig means (min 1, max 10, the same timeouts and lifetimes) written out here as
  literals, never computed by poolbridge's translation: the comparison is poolbridge
  against what a user would write without it;
- ``raw``: the driver's pool with its defaults.

Both sides of a comparison run with the same autocommit: the MySQL pools get
``autocommit=True`` in every variant (aiomysql's pool closes a connection returned inside a
transaction, so a native MySQL pool needs it; poolbridge gets it through ``driver_options``),
psycopg keeps the driver's default (off) in every variant, and ends each query's
transaction in hand as the poolbridge variant does (see :func:`open_psycopg`).

The server URLs come from :func:`set_urls` (``poolbridge bench --postgresql URL --mysql
URL``), else from ``POOLBRIDGE_TEST_PG_URL`` / ``POOLBRIDGE_TEST_MYSQL_URL``, else the
loopback test servers of a poolbridge checkout.

The "small ORM query" of a raw driver is a parametrised ``SELECT id, name FROM <table>
WHERE id = ?`` returning one row.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

#: backend -> server URL; :func:`set_urls` replaces them
URLS: dict[str, str] = {
    "postgresql": os.environ.get("POOLBRIDGE_TEST_PG_URL", "postgresql://root@127.0.0.1:5432/test"),
    "mysql": os.environ.get("POOLBRIDGE_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"),
}
SIZE = 10
#: the PoolConfig every poolbridge variant uses, and what its defaults mean natively: the
#: hand variants below spell these values out in each driver's own arguments
NAME = "pb_bench"
ACQUIRE_TIMEOUT = 30.0
CONNECT_TIMEOUT = 10
MAX_LIFETIME = 3600.0
MAX_IDLE = 600.0
#: one small table per backend, unique to this process, created by setup() and dropped
TABLE = f"pb_bench_{uuid.uuid4().hex[:10]}"
ROWS = 10
ROW_ID = 3


@dataclass
class Ops:
    """What one stack can do; each call is one full acquire -> work -> release."""

    select1: Callable[[], Awaitable[Any]]
    orm: Callable[[], Awaitable[Any]]
    acquire: Callable[[], AbstractAsyncContextManager[Any]]


Opener = Callable[[str], AbstractAsyncContextManager[Ops]]


def set_urls(urls: dict[str, str]) -> None:
    """Benchmark against these servers (backend -> URL; a ``+driver`` suffix of the scheme
    is dropped: each stack names its driver itself)."""
    for backend, url in urls.items():
        scheme, sep, rest = url.partition("://")
        URLS[backend] = scheme.split("+", 1)[0] + sep + rest


def url_for(backend: str) -> str:
    return URLS[backend]


def mysql_kwargs(db_key: str = "db") -> dict[str, Any]:
    """aiomysql/asyncmy connect arguments for the MySQL URL (``db`` or ``database``)."""
    u = urlsplit(url_for("mysql"))
    return {
        "host": u.hostname or "127.0.0.1",
        "port": u.port or 3306,
        "user": unquote(u.username or "root"),
        "password": unquote(u.password or ""),
        db_key: u.path.lstrip("/") or "test",
    }


def config(backend: str, **kw: Any) -> Any:
    from poolbridge import PoolConfig

    return PoolConfig(url=url_for(backend), min_size=1, max_size=SIZE, name=NAME, **kw)


# -- the table ------------------------------------------------------------------------
async def setup(backend: str) -> None:
    """Create and fill TABLE on ``backend`` (once per run)."""
    rows = [(i, f"row {i}") for i in range(1, ROWS + 1)]
    if backend == "postgresql":
        import asyncpg

        conn = await asyncpg.connect(url_for(backend))
        try:
            await conn.execute(f"CREATE TABLE {TABLE} (id integer PRIMARY KEY, name varchar(32))")
            await conn.executemany(f"INSERT INTO {TABLE} VALUES ($1, $2)", rows)
        finally:
            await conn.close()
        return
    import aiomysql

    mconn = await aiomysql.connect(autocommit=True, **mysql_kwargs())
    try:
        async with mconn.cursor() as cur:
            await cur.execute(f"CREATE TABLE {TABLE} (id integer PRIMARY KEY, name varchar(32))")
            await cur.executemany(f"INSERT INTO {TABLE} VALUES (%s, %s)", rows)
    finally:
        mconn.close()


async def teardown(backend: str) -> None:
    """Drop TABLE on ``backend``."""
    if backend == "postgresql":
        import asyncpg

        conn = await asyncpg.connect(url_for(backend))
        try:
            await conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        finally:
            await conn.close()
        return
    import aiomysql

    mconn = await aiomysql.connect(autocommit=True, **mysql_kwargs())
    try:
        async with mconn.cursor() as cur:
            await cur.execute(f"DROP TABLE IF EXISTS {TABLE}")
    finally:
        mconn.close()


# -- queries on native connections --------------------------------------------------------
def _ops(
    acquire: Callable[[], AbstractAsyncContextManager[Any]],
    q1: Callable[[Any], Awaitable[Any]],
    q2: Callable[[Any], Awaitable[Any]],
) -> Ops:
    async def select1() -> Any:
        async with acquire() as conn:
            return await q1(conn)

    async def orm() -> Any:
        async with acquire() as conn:
            return await q2(conn)

    return Ops(select1, orm, acquire)


BY_ID = f"SELECT id, name FROM {TABLE} WHERE id = "


async def _pg_1(conn: Any) -> Any:
    return await conn.fetchval("SELECT 1")


async def _pg_row(conn: Any) -> Any:
    return await conn.fetchrow(BY_ID + "$1", ROW_ID)


async def _cursor_1(conn: Any) -> Any:  # aiopg, aiomysql, asyncmy: DB-API cursors
    async with conn.cursor() as cur:
        await cur.execute("SELECT 1")
        return await cur.fetchone()


async def _cursor_row(conn: Any) -> Any:
    async with conn.cursor() as cur:
        await cur.execute(BY_ID + "%s", (ROW_ID,))
        return await cur.fetchone()


async def _psycopg_1(conn: Any) -> Any:
    cur = await conn.execute("SELECT 1")
    return await cur.fetchone()


async def _psycopg_row(conn: Any) -> Any:
    cur = await conn.execute(BY_ID + "%s", (ROW_ID,))
    return await cur.fetchone()


# psycopg by hand with the reset of poolbridge's acquire(): the transaction the query
# opened ends in a ROLLBACK, written out (psycopg_pool's connection() then finds the
# connection idle and has nothing to commit)
async def _psycopg_1_rollback(conn: Any) -> Any:
    cur = await conn.execute("SELECT 1")
    row = await cur.fetchone()
    await conn.rollback()
    return row


async def _psycopg_row_rollback(conn: Any) -> Any:
    cur = await conn.execute(BY_ID + "%s", (ROW_ID,))
    row = await cur.fetchone()
    await conn.rollback()
    return row


# -- the stacks -------------------------------------------------------------------------
@asynccontextmanager
async def open_psycopg(variant: str, native: bool = False) -> AsyncIterator[Ops]:
    """psycopg_pool. ``native``: the poolbridge variant is used through psycopg_pool's own
    ``pool.native.connection()`` (commit on exit, like hand and raw) instead of the uniform
    ``pool.acquire()`` (poolbridge's reset: a ROLLBACK at release when a transaction is
    open, and psycopg drops its prepared statements on every rollback). Hand ends its
    transaction the way the poolbridge variant does: with a COMMIT (``connection()``) next
    to ``native``, with a ROLLBACK written out next to ``acquire()``; raw keeps the
    defaults (``connection()``, COMMIT)."""
    from psycopg_pool import AsyncConnectionPool

    import poolbridge

    pool: Any
    q1, q2 = _psycopg_1, _psycopg_row
    if variant == "hand" and not native:
        q1, q2 = _psycopg_1_rollback, _psycopg_row_rollback
    if variant == "poolbridge":
        pool = await poolbridge.open_pool(config("postgresql"), adapter="psycopg")
        acquire = pool.native.connection if native else pool.acquire
    else:
        kw: dict[str, Any] = {}
        if variant == "hand":
            kw = dict(
                min_size=1,
                max_size=SIZE,
                timeout=ACQUIRE_TIMEOUT,
                max_lifetime=MAX_LIFETIME,
                max_idle=MAX_IDLE,
                kwargs={"application_name": NAME, "connect_timeout": CONNECT_TIMEOUT},
            )
        pool = AsyncConnectionPool(url_for("postgresql"), open=False, **kw)
        await pool.open(wait=True)
        acquire = pool.connection
    try:
        yield _ops(acquire, q1, q2)
    finally:
        await pool.close()


@asynccontextmanager
async def open_asyncpg(variant: str) -> AsyncIterator[Ops]:
    import asyncpg

    import poolbridge

    pool: Any
    if variant == "poolbridge":
        pool = await poolbridge.open_pool(config("postgresql"), adapter="asyncpg")
    elif variant == "hand":
        pool = await asyncpg.create_pool(
            url_for("postgresql"),
            min_size=1,
            max_size=SIZE,
            max_inactive_connection_lifetime=MAX_IDLE,
            timeout=CONNECT_TIMEOUT,
            server_settings={"application_name": NAME},
        )
    else:  # defaults: min_size=10, max_size=10, the full reset query on every release
        pool = await asyncpg.create_pool(url_for("postgresql"))
    try:
        yield _ops(pool.acquire, _pg_1, _pg_row)
    finally:
        await pool.close()


@asynccontextmanager
async def open_dbapi(driver: str, variant: str) -> AsyncIterator[Ops]:
    """aiopg (PostgreSQL), aiomysql and asyncmy (MariaDB): minsize/maxsize pools."""
    import poolbridge

    backend = "postgresql" if driver == "aiopg" else "mysql"
    if variant == "poolbridge":
        # MySQL: autocommit as the native variants below have it (the native pools close a
        # connection returned inside a transaction, so they need it; without it, poolbridge
        # sends a ROLLBACK at each release after a SELECT: one more round trip per query)
        extra: dict[str, Any] = {}
        if backend == "mysql":
            extra["driver_options"] = {"autocommit": True}
        pool: Any = await poolbridge.open_pool(config(backend, **extra), adapter=driver)
        try:
            yield _ops(pool.acquire, _cursor_1, _cursor_row)
        finally:
            await pool.close()
        return
    mod: Any = __import__(driver)
    kw: dict[str, Any] = {}
    if variant == "hand":  # pool_recycle: these pools close a connection idle that long
        kw = {"minsize": 1, "maxsize": SIZE, "pool_recycle": MAX_IDLE}
    if driver == "aiopg":
        u = urlsplit(url_for("postgresql"))
        kw.update(
            host=u.hostname,
            port=u.port or 5432,
            user=unquote(u.username or "root"),
            password=unquote(u.password or ""),
            dbname=u.path.lstrip("/"),
        )
    else:
        kw.update(mysql_kwargs("database" if driver == "asyncmy" else "db"), autocommit=True)
    npool = await mod.create_pool(**kw)
    try:
        yield _ops(npool.acquire, _cursor_1, _cursor_row)
    finally:
        npool.close()
        await npool.wait_closed()
