"""Engine shim for aiomysql (see drivers/_mysql.py for what it shares with asyncmy)."""

from __future__ import annotations

import asyncio
from typing import Any

from poolbridge.config.model import PoolConfig
from poolbridge.drivers._mysql import MySQLShim
from poolbridge.drivers.base import client_backstop
from poolbridge.drivers.hosts import retired
from poolbridge.drivers.state import aiomysql_is_closed, aiomysql_reusable

__all__ = ["AiomysqlShim"]


class AiomysqlShim(MySQLShim):
    name = "aiomysql"
    db_keyword = "db"

    def driver_connect(self, **kw: Any) -> Any:
        import aiomysql

        return aiomysql.connect(**kw)

    async def connect(self, config: PoolConfig, timeout: float) -> Any:
        conn = await super().connect(config, timeout)
        backstop = client_backstop(config)
        if backstop is not None:
            _bound_reads(conn, backstop)
        return conn

    # the checks of every checkout and checkin (drivers/state.py): state_checks() hands
    # them to the engine as they are when the pool does not route between hosts
    plain_checks = (aiomysql_is_closed, aiomysql_reusable)

    def is_closed(self, conn: Any) -> bool:
        if aiomysql_is_closed(conn):
            return True
        routed = self.routed_config
        return routed is not None and retired(conn, routed)

    def reusable(self, conn: Any) -> bool:
        return aiomysql_reusable(conn)

    def local_server_id(self, conn: Any) -> int | str:
        return int(conn.server_thread_id[0])

    def sever(self, conn: Any) -> None:
        conn._writer.transport.abort()  # a pending read sees the connection lost

    def error_modules(self) -> tuple[Any, ...]:
        import pymysql.err

        return (pymysql.err,)


def _bound_reads(conn: Any, seconds: float) -> None:
    """Bound every socket read of ``conn`` (aiomysql has no read timeout of its own).

    With ``statement_timeout`` set the server answers within it; a read that waits longer
    means the network stalled, so the connection is closed and the caller gets MySQL's own
    "lost connection" error (2013) instead of hanging.
    """
    read = getattr(conn, "_read_bytes", None)
    if read is None:
        return

    async def bounded_read(num_bytes: int) -> Any:
        try:
            async with asyncio.timeout(seconds):
                return await read(num_bytes)
        except TimeoutError as exc:
            import pymysql.err

            conn.close()
            raise pymysql.err.OperationalError(
                2013, f"Lost connection to MySQL server: no data for {seconds:g} s"
            ) from exc

    conn._read_bytes = bounded_read
