"""Engine shim for asyncmy (see drivers/_mysql.py for what it shares with aiomysql)."""

from __future__ import annotations

from typing import Any

from poolbridge.config.model import PoolConfig
from poolbridge.drivers._mysql import MySQLShim
from poolbridge.drivers.base import client_backstop
from poolbridge.drivers.hosts import retired
from poolbridge.drivers.state import asyncmy_is_closed, asyncmy_reusable

__all__ = ["AsyncmyShim"]


class AsyncmyShim(MySQLShim):
    name = "asyncmy"
    db_keyword = "database"

    def connect_kwargs(self, config: PoolConfig) -> dict[str, Any]:
        kw = super().connect_kwargs(config)
        backstop = client_backstop(config)
        if backstop is not None and "read_timeout" not in config.driver_options:
            kw["read_timeout"] = backstop  # client-side, for a stalled network
        return kw

    def driver_connect(self, **kw: Any) -> Any:
        import asyncmy

        return asyncmy.connect(**kw)

    # the checks of every checkout and checkin (drivers/state.py): state_checks() hands
    # them to the engine as they are when the pool does not route between hosts
    plain_checks = (asyncmy_is_closed, asyncmy_reusable)

    def is_closed(self, conn: Any) -> bool:
        if asyncmy_is_closed(conn):
            return True
        routed = self.routed_config
        return routed is not None and retired(conn, routed)

    def reusable(self, conn: Any) -> bool:
        return asyncmy_reusable(conn)

    def local_server_id(self, conn: Any) -> int | str:
        return int(conn.thread_id())

    def sever(self, conn: Any) -> None:
        conn._transport.abort()  # a pending read sees the connection lost

    def error_modules(self) -> tuple[Any, ...]:
        import asyncmy.errors

        return (asyncmy.errors,)
