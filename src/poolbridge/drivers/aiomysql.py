"""Engine shim for aiomysql (see drivers/_mysql.py for what it shares with asyncmy)."""

from __future__ import annotations

from typing import Any

from ._mysql import MySQLShim

__all__ = ["AiomysqlShim"]


class AiomysqlShim(MySQLShim):
    name = "aiomysql"
    db_keyword = "db"

    def driver_connect(self, **kw: Any) -> Any:
        import aiomysql

        return aiomysql.connect(**kw)

    def is_closed(self, conn: Any) -> bool:
        if conn.closed:
            return True
        reader = getattr(conn, "_reader", None)  # EOF seen: the server closed (e.g. KILL)
        return bool(reader is not None and reader.at_eof())

    async def server_id(self, conn: Any) -> int | str:
        return int(conn.server_thread_id[0])

    def error_modules(self) -> tuple[Any, ...]:
        import pymysql.err

        return (pymysql.err,)
