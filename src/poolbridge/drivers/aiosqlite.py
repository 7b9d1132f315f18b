"""Engine shim for aiosqlite (one worker thread per connection; file databases).

``session`` entries become ``PRAGMA name = value``. SQLite has no server: the connection
id is a process-local counter, there is no TLS, no isolation level in PoolConfig's sense
and no server-side statement timeout (those knobs are unsupported when set).
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

from poolbridge.config.model import PoolConfig
from poolbridge.drivers.base import BaseShim, next_local_id, sqlite_cannot_honour
from poolbridge.drivers.state import aiosqlite_is_closed, aiosqlite_reusable

__all__ = ["AiosqliteShim"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


class AiosqliteShim(BaseShim):
    name = "aiosqlite"
    backend = "sqlite"

    def connect_kwargs(self, config: PoolConfig) -> dict[str, Any]:
        kw: dict[str, Any] = {"database": config.database_url.database or ":memory:"}
        kw.update(config.database_url.query)
        kw.update(config.driver_options)
        return kw

    def unsupported(self, config: PoolConfig) -> dict[str, str]:
        out = sqlite_cannot_honour(config)
        if config.isolation_level is not None:
            out["isolation_level"] = "SQLite transactions are serializable; no level to choose"
        if config.statement_timeout is not None:
            out["statement_timeout"] = "SQLite has no server-side statement timeout"
        if config.ssl not in (None, "disable"):
            out["ssl"] = "SQLite is a local file: there is no connection to encrypt"
        return out

    async def connect(self, config: PoolConfig, timeout: float) -> Any:
        import aiosqlite

        conn = await aiosqlite.connect(**self.connect_kwargs(config))
        try:
            for key, value in config.session.items():
                if not _NAME.match(str(key)):
                    raise ValueError(f"PRAGMA name {key!r} is not a valid identifier")
                await conn.execute(f"PRAGMA {key} = {value}")
        except BaseException:
            self.terminate(conn)
            raise
        return conn

    async def close(self, conn: Any) -> None:
        await conn.close()

    def terminate(self, conn: Any) -> None:
        # conn.stop() hands its worker thread a future of the current loop; when the loop
        # closes first the thread dies with "Event loop is closed". Queue the same stop
        # without a future (aiosqlite internals, guarded; conn.stop() as the fallback).
        try:
            from aiosqlite import core

            sentinel = core._STOP_RUNNING_SENTINEL

            def close_and_stop() -> object:
                if conn._connection is not None:
                    conn._connection.close()
                    conn._connection = None
                return sentinel

            conn._running = False
            conn._tx.put_nowait((None, close_and_stop))
        except Exception:
            with contextlib.suppress(Exception):
                conn.stop()

    async def ping(self, conn: Any) -> None:
        cur = await conn.execute("SELECT 1")
        await cur.close()

    def in_transaction(self, conn: Any) -> bool | None:
        try:
            return bool(conn.in_transaction)
        except Exception:
            return None

    # the checks of every checkout and checkin (drivers/state.py), handed to the engine
    plain_checks = (aiosqlite_is_closed, aiosqlite_reusable)

    def is_closed(self, conn: Any) -> bool:
        return aiosqlite_is_closed(conn)

    def reusable(self, conn: Any) -> bool:
        return aiosqlite_reusable(conn)

    async def rollback(self, conn: Any) -> None:
        await conn.rollback()

    def local_server_id(self, conn: Any) -> int | str:
        return next_local_id()  # a process-local number: SQLite has no server

    def sever(self, conn: Any) -> None:
        """Nothing to cut: SQLite has no network to stall, and closing would drop an
        in-memory database."""

    def connection_error_types(self) -> tuple[type[BaseException], ...]:
        import sqlite3

        return (sqlite3.ProgrammingError,)
