"""Engine shim for aiomysql (see drivers/_mysql.py for what it shares with asyncmy)."""

from __future__ import annotations

import asyncio
from typing import Any

from poolbridge.config.model import PoolConfig
from poolbridge.drivers._mysql import SERVER_STATUS_IN_TRANS, MySQLShim
from poolbridge.drivers.base import client_backstop
from poolbridge.drivers.hosts import retired

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

    def is_closed(self, conn: Any) -> bool:
        if conn.closed:
            return True
        routed = self.routed_config
        if routed is not None and retired(conn, routed):
            return True
        reader = getattr(conn, "_reader", None)  # EOF seen: the server closed (e.g. KILL)
        return reader is not None and reader.at_eof() is True

    def reusable(self, conn: Any) -> bool:
        # checkin: open and outside a transaction, in one pass (a stream the server closed
        # while the connection was held is caught by is_closed() at the next checkout)
        status = conn.server_status
        return status is not None and not status & SERVER_STATUS_IN_TRANS and conn.closed is False

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
