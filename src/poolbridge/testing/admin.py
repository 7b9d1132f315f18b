"""Server-side facts for the suite: an admin connection per test, limited roles, live ids.

The suite never trusts a pool's own counters alone. For each test it opens an admin
connection with the ``--poolbridge-dburl`` credentials (a privileged user: it creates and
drops one role per test), creates a dedicated role whose CONNECTION LIMIT / MAX_USER_CONNECTIONS
makes the server refuse anything above the pool's max_size, and asks the server which of the
connection ids the pool's ``on_connect`` recorded are still alive.
SQLite has no server: :class:`SQLiteAdmin` only offers what a file can (tables, counts).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import secrets
import socket
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from poolbridge.config.model import PoolConfig

__all__ = [
    "Admin",
    "MySQLAdmin",
    "PostgresAdmin",
    "SQLiteAdmin",
    "in_ci",
    "open_admin",
    "reachable",
    "with_credentials",
]


def in_ci() -> bool:
    """True under ``CI=true``: a missing server is then a failure, not a skip."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def reachable(url: str, timeout: float = 2.0) -> str | None:
    """None when the URL's server accepts TCP connections, else why not (SQLite: None)."""
    cfg = PoolConfig(url=url)
    if cfg.backend == "sqlite":
        return None
    dbu = cfg.database_url
    if dbu.host is None or dbu.host.startswith("/") or "host" in dbu.query:
        return None  # Unix socket: let the driver tell
    port = dbu.port or (5432 if cfg.backend == "postgresql" else 3306)
    try:
        with socket.create_connection((dbu.host, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"{cfg.backend} server not reachable on {dbu.host}:{port} ({exc.strerror or exc})"


def with_credentials(url: str, user: str, password: str) -> str:
    """``url`` with its user and password replaced (the password never gets printed)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class Admin:
    """One privileged connection to the server behind a dburl (see the module docstring)."""

    backend: str = ""
    #: what stands between the pools and the server ("" or "pgbouncer")
    via: str = ""
    #: SQL returning the server-side id of the connection running it (None: no server)
    id_sql: str | None = None
    #: SQL that sleeps about ``{s}`` seconds (format with s=...)
    sleep_sql: str = "SELECT 1"

    def __init__(self, url: str) -> None:
        self.url = url
        self.config = PoolConfig(url=url)

    async def close(self) -> None:
        """Close the admin connection."""

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    async def execute(self, sql: str) -> None:
        await self.fetch(sql)

    def connection_key(self, connection_id: int | str | None, native: Any) -> int | str | None:
        """The id the suite records for a hook event's connection (the server-side id the
        driver reports; :class:`~poolbridge.testing.servers.pgbouncer.PgBouncerAdmin` differs)."""
        return connection_id

    async def connection_id(self, run: Callable[[str], Awaitable[Any]]) -> int | str | None:
        """The id of the connection behind ``run`` (a scalar runner), as the hooks record it."""
        if self.id_sql is None:
            return None
        value = await run(self.id_sql)
        return int(value) if value is not None else None

    async def alive(self, ids: Iterable[int | str | None]) -> set[int]:
        """Which of ``ids`` are live server connections right now."""
        raise NotImplementedError

    async def kill(self, connection_id: int | str) -> None:
        """Terminate one server connection (fault rows only)."""
        raise NotImplementedError

    async def in_transaction(self, connection_id: int | str) -> bool:
        """Whether that server connection has a transaction open."""
        raise NotImplementedError

    async def count_role_connections(self, role: str) -> int:
        """How many server connections are logged in as ``role`` (this test's own role)."""
        raise NotImplementedError

    @contextlib.asynccontextmanager
    async def limited_user(self, limit: int) -> AsyncIterator[str]:
        """A fresh role limited to ``limit`` connections; yields the dburl logging in as it."""
        raise NotImplementedError
        yield ""  # pragma: no cover

    async def create_table(self, name: str, grantee: str | None) -> None:
        raise NotImplementedError

    async def drop_table(self, name: str) -> None:
        await self.execute(f"DROP TABLE IF EXISTS {name}")

    async def count_rows(self, table: str) -> int:
        rows = await self.fetch(f"SELECT count(*) FROM {table}")
        return int(rows[0][0])

    async def wait_gone(self, ids: Iterable[int | str | None], timeout: float = 5.0) -> set[int]:
        """Poll until none of ``ids`` is alive (or ``timeout`` s); returns those still alive."""
        ids = list(ids)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            still = await self.alive(ids)
            if not still or loop.time() >= deadline:
                return still
            await asyncio.sleep(0.05)


def _ints(ids: Iterable[int | str | None]) -> list[int]:
    return sorted({int(i) for i in ids if i is not None})


class PostgresAdmin(Admin):
    backend = "postgresql"
    id_sql = "SELECT pg_backend_pid()"
    sleep_sql = "SELECT pg_sleep({s})"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._conn: Any = None
        self._kind = ""

    async def connect(self) -> None:
        __tracebackhide__ = True  # its locals hold credentials: keep them out of reports
        dbu = self.config.database_url
        kw: dict[str, Any] = {
            "host": dbu.host or dbu.query.get("host"),
            "port": dbu.port or 5432,
            "user": dbu.username,
            "password": dbu.password,
            "dbname": dbu.database,
        }
        if importlib.util.find_spec("psycopg") is not None:
            import psycopg

            self._kind = "psycopg"
            self._conn = await psycopg.AsyncConnection.connect(
                autocommit=True,
                connect_timeout=5,
                **{k: v for k, v in kw.items() if v},
                **self.driver_options(),
            )
        else:
            import asyncpg

            self._kind = "asyncpg"
            kw["database"] = kw.pop("dbname")
            self._conn = await asyncpg.connect(
                timeout=5, **{k: v for k, v in kw.items() if v}, **self.driver_options()
            )

    def driver_options(self) -> dict[str, Any]:
        """Extra keyword arguments for the admin connection's driver."""
        return {}

    async def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        if self._kind == "psycopg":
            cur = await self._conn.execute(sql.replace("$1", "%s"), args or None)
            return [tuple(r) for r in await cur.fetchall()] if cur.description else []
        return [tuple(r) for r in await self._conn.fetch(sql, *args)]

    async def alive(self, ids: Iterable[int | str | None]) -> set[int]:
        wanted = _ints(ids)
        if not wanted:
            return set()
        rows = await self.fetch(
            "SELECT pid FROM pg_stat_activity WHERE pid IN ("
            + ",".join(str(i) for i in wanted)
            + ")"
        )
        return {int(r[0]) for r in rows}

    async def kill(self, connection_id: int | str) -> None:
        await self.fetch(f"SELECT pg_terminate_backend({int(connection_id)})")

    async def in_transaction(self, connection_id: int | str) -> bool:
        rows = await self.fetch(
            f"SELECT state, xact_start FROM pg_stat_activity WHERE pid = {int(connection_id)}"
        )
        return bool(rows) and (rows[0][1] is not None or "transaction" in str(rows[0][0]))

    async def count_role_connections(self, role: str) -> int:
        rows = await self.fetch(f"SELECT count(*) FROM pg_stat_activity WHERE usename = '{role}'")
        return int(rows[0][0])

    @contextlib.asynccontextmanager
    async def limited_user(self, limit: int) -> AsyncIterator[str]:
        __tracebackhide__ = True  # its locals hold credentials: keep them out of reports
        role = f"pb_{secrets.token_hex(5)}"
        password = secrets.token_hex(12)
        await self.execute(
            f"CREATE ROLE {role} LOGIN PASSWORD '{password}' CONNECTION LIMIT {int(limit)}"
        )
        self.role = role
        try:
            # grant only what PUBLIC does not already give: concurrent GRANTs on one
            # database row fail with "tuple concurrently updated"
            db = self.config.database_url.database
            if (
                db
                and not (
                    await self.fetch(f"SELECT has_database_privilege('{role}', $1, 'CONNECT')", db)
                )[0][0]
            ):
                await self.execute(f'GRANT CONNECT ON DATABASE "{db}" TO {role}')
            if not (await self.fetch(f"SELECT has_schema_privilege('{role}', 'public', 'USAGE')"))[
                0
            ][0]:
                await self.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
            yield with_credentials(self.url, role, password)
        finally:
            with contextlib.suppress(Exception):
                await self.fetch(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    f"WHERE usename = '{role}'"
                )
            with contextlib.suppress(Exception):
                await self.execute(f"DROP OWNED BY {role}")
            with contextlib.suppress(Exception):
                await self.execute(f"DROP ROLE IF EXISTS {role}")

    async def create_table(self, name: str, grantee: str | None) -> None:
        await self.execute(f"CREATE TABLE {name} (id integer)")
        if grantee:
            await self.execute(f"GRANT ALL ON TABLE {name} TO {grantee}")


class MySQLAdmin(Admin):
    backend = "mysql"
    id_sql = "SELECT CONNECTION_ID()"
    sleep_sql = "SELECT SLEEP({s})"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._conn: Any = None

    async def connect(self) -> None:
        __tracebackhide__ = True  # its locals hold credentials: keep them out of reports
        dbu = self.config.database_url
        kw: dict[str, Any] = {
            "host": dbu.host or "127.0.0.1",
            "port": dbu.port or 3306,
            "user": dbu.username or "root",
            "password": dbu.password or "",
            "db": dbu.database,
            "autocommit": True,
            "connect_timeout": 5,
        }
        if importlib.util.find_spec("aiomysql") is not None:
            import aiomysql

            self._conn = await aiomysql.connect(**kw)
        else:
            import asyncmy

            kw["database"] = kw.pop("db")
            self._conn = await asyncmy.connect(**kw)

    async def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            with contextlib.suppress(Exception):
                await self._conn.ensure_closed()

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        async with self._conn.cursor() as cur:
            await cur.execute(sql, args or None)
            rows: Sequence[Any] = await cur.fetchall() if cur.description else []
            return [tuple(r) for r in rows]

    async def alive(self, ids: Iterable[int | str | None]) -> set[int]:
        wanted = _ints(ids)
        if not wanted:
            return set()
        rows = await self.fetch(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE ID IN ("
            + ",".join(str(i) for i in wanted)
            + ") AND COMMAND <> 'Killed'"
        )
        return {int(r[0]) for r in rows}

    async def kill(self, connection_id: int | str) -> None:
        with contextlib.suppress(Exception):
            await self.execute(f"KILL {int(connection_id)}")

    async def in_transaction(self, connection_id: int | str) -> bool:
        rows = await self.fetch(
            "SELECT count(*) FROM information_schema.INNODB_TRX "
            f"WHERE trx_mysql_thread_id = {int(connection_id)}"
        )
        return int(rows[0][0]) > 0

    async def count_role_connections(self, role: str) -> int:
        rows = await self.fetch(
            f"SELECT count(*) FROM information_schema.PROCESSLIST WHERE USER = '{role}'"
        )
        return int(rows[0][0])

    @contextlib.asynccontextmanager
    async def limited_user(self, limit: int) -> AsyncIterator[str]:
        __tracebackhide__ = True  # its locals hold credentials: keep them out of reports
        role = f"pb_{secrets.token_hex(5)}"
        password = secrets.token_hex(12)
        db = self.config.database_url.database or "test"
        await self.execute(
            f"CREATE USER '{role}'@'%' IDENTIFIED BY '{password}' "
            f"WITH MAX_USER_CONNECTIONS {int(limit)}"
        )
        self.role = role
        try:
            await self.execute(f"GRANT ALL ON `{db}`.* TO '{role}'@'%'")
            yield with_credentials(self.url, role, password)
        finally:
            with contextlib.suppress(Exception):
                for (pid,) in await self.fetch(
                    f"SELECT ID FROM information_schema.PROCESSLIST WHERE USER = '{role}'"
                ):
                    await self.kill(pid)
            with contextlib.suppress(Exception):
                await self.execute(f"DROP USER IF EXISTS '{role}'@'%'")

    async def create_table(self, name: str, grantee: str | None) -> None:
        await self.execute(f"CREATE TABLE {name} (id integer) ENGINE=InnoDB")


class SQLiteAdmin(Admin):
    """A file database: tables and counts through the standard library, no server ids."""

    backend = "sqlite"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.path = self.config.database_url.database or ":memory:"

    async def connect(self) -> None:
        """Nothing to connect: every call opens the file briefly."""

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        def run() -> list[tuple[Any, ...]]:
            with contextlib.closing(sqlite3.connect(self.path, timeout=5)) as conn:
                rows = conn.execute(sql, args).fetchall()
                conn.commit()
                return [tuple(r) for r in rows]

        return await asyncio.to_thread(run)

    async def alive(self, ids: Iterable[int | str | None]) -> set[int]:
        raise NotImplementedError("SQLite has no server connections")

    async def in_transaction(self, connection_id: int | str) -> bool:
        raise NotImplementedError("SQLite has no server connections")

    @contextlib.asynccontextmanager
    async def limited_user(self, limit: int) -> AsyncIterator[str]:
        yield self.url

    async def create_table(self, name: str, grantee: str | None) -> None:
        await self.execute(f"CREATE TABLE {name} (id integer)")


async def open_admin(url: str, via: str = "") -> Admin:
    """A connected admin for ``url``'s backend (``via="pgbouncer"``: ``url`` is a pgbouncer
    in front of PostgreSQL, see :class:`~poolbridge.testing.servers.pgbouncer.PgBouncerAdmin`)."""
    __tracebackhide__ = True  # ``url`` may hold a password: keep it out of reports
    backend = PoolConfig(url=url).backend
    admin: PostgresAdmin | MySQLAdmin | SQLiteAdmin
    if via == "pgbouncer" and backend == "postgresql":
        from poolbridge.testing.servers.pgbouncer import PgBouncerAdmin

        admin = PgBouncerAdmin(url)
    elif via:
        raise ValueError(f"cannot reach a {backend} server via {via!r}")
    elif backend == "postgresql":
        admin = PostgresAdmin(url)
    elif backend == "mysql":
        admin = MySQLAdmin(url)
    else:
        admin = SQLiteAdmin(url)
    await admin.connect()
    return admin
