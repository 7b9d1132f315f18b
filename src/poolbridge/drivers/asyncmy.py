"""Engine shim for asyncmy (see drivers/_mysql.py for what it shares with aiomysql)."""

from __future__ import annotations

from typing import Any

from poolbridge.config.model import PoolConfig
from poolbridge.drivers._mysql import SERVER_STATUS_IN_TRANS, MySQLShim
from poolbridge.drivers.base import client_backstop
from poolbridge.drivers.hosts import retired

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

    def is_closed(self, conn: Any) -> bool:
        # every checkout asks: no bool() or call that the common answer does not need
        if not conn.connected:
            return True
        routed = self.routed_config
        if routed is not None and retired(conn, routed):
            return True
        transport = getattr(conn, "_transport", None)  # closing: the server hung up
        return transport is not None and transport.is_closing() is True

    def reusable(self, conn: Any) -> bool:
        # checkin: connected and outside a transaction, in one pass. A transport the server
        # closed while the caller held the connection is caught by is_closed() at the next
        # checkout (and by maintenance), as for one closed while idle.
        status = conn.server_status
        return status is not None and not status & SERVER_STATUS_IN_TRANS and conn.connected is True

    def local_server_id(self, conn: Any) -> int | str:
        return int(conn.thread_id())

    def sever(self, conn: Any) -> None:
        conn._transport.abort()  # a pending read sees the connection lost

    def error_modules(self) -> tuple[Any, ...]:
        import asyncmy.errors

        return (asyncmy.errors,)
