"""What the aiomysql and asyncmy shims share (their connection APIs are near twins).

Session settings, ``isolation_level`` and ``statement_timeout`` (MariaDB
``max_statement_time``, seconds) run as ``SET SESSION`` statements right after connect.
Transaction state comes from the server status flags of the last OK/EOF packet
(``get_transaction_status()``), so a release after autocommitted work sends nothing.
Neither driver exposes COM_RESET_CONNECTION: the full reset replaces the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from poolbridge.config.model import PoolConfig
from poolbridge.drivers.base import BaseShim, mysql_session_sql, ssl_context, wait_for_slot
from poolbridge.drivers.hosts import MYSQL_ROLE_SQL, demoted, needs_routing, routed
from poolbridge.drivers.state import SERVER_STATUS_IN_TRANS
from poolbridge.pool.retrying import MYSQL_CONNECTION_CODES

__all__ = [
    "MYSQL_CONNECTION_ERRNOS",
    "MYSQL_PERMANENT_CONNECT_ERRNOS",
    "MYSQL_SLOT_REFUSED_ERRNOS",
    "MySQLShim",
    "permanent_connect_error",
    "slot_refused",
]

#: MySQL/MariaDB client and server error numbers that mean "this connection is gone": the
#: list ``poolbridge.retry`` uses (a core module, so it keeps it; one list for both)
MYSQL_CONNECTION_ERRNOS = MYSQL_CONNECTION_CODES

#: MySQL/MariaDB error numbers at connect that retrying cannot cure: access denied (1044,
#: 1045, 1698), unknown database (1049), host not allowed / blocked (1130, 1129), unknown
#: charset (1115), a bad session setting (1193 unknown variable, 1231/1232 bad value, 1227
#: privilege, 1064 syntax), an authentication method the client lacks (1251, 2059)
MYSQL_PERMANENT_CONNECT_ERRNOS = frozenset(
    {1044, 1045, 1049, 1064, 1115, 1129, 1130, 1193, 1227, 1231, 1232, 1251, 1698, 2059}
)


#: MySQL/MariaDB error numbers of a server that refused a connection slot: 1040 too many
#: connections (max_connections), 1203 the user's max_user_connections, 1226 a resource limit
#: of the account (MAX_USER_CONNECTIONS). A connection the pool abandoned (a cancelled
#: ``SELECT SLEEP(..)``) keeps its slot on the server until its statement ends, so the slot
#: frees within moments: retried within the caller's deadline
#: (:func:`poolbridge.drivers.connect_errors.wait_for_slot`).
MYSQL_SLOT_REFUSED_ERRNOS = frozenset({1040, 1203, 1226})


def slot_refused(exc: BaseException) -> bool:
    """True when an aiomysql (pymysql) or asyncmy error at connect is the server refusing a
    connection slot (:data:`MYSQL_SLOT_REFUSED_ERRNOS`)."""
    args = exc.args
    return bool(args) and args[0] in MYSQL_SLOT_REFUSED_ERRNOS


def permanent_connect_error(exc: BaseException) -> bool:
    """True when an aiomysql (pymysql) or asyncmy error at connect cannot be cured by
    retrying: both carry the error number as ``args[0]``."""
    args = exc.args
    return bool(args) and args[0] in MYSQL_PERMANENT_CONNECT_ERRNOS


class MySQLShim(BaseShim):
    backend = "mysql"
    #: the driver's keyword for the database name
    db_keyword = "db"

    def connect_kwargs(self, config: PoolConfig) -> dict[str, Any]:
        u = config.database_url
        parts = self.url_parts(config)
        kw: dict[str, Any] = {k: v for k, v in parts.items() if k != "database"}
        if "database" in parts:
            kw[self.db_keyword] = parts["database"]
        kw.update(u.query)  # driver keys from the URL (charset, unix_socket, ...)
        if u.password is not None or isinstance(config.password, str):
            kw["password"] = config.password if isinstance(config.password, str) else u.password
        kw["connect_timeout"] = config.connect_timeout
        ctx = ssl_context(config.ssl)
        if ctx is not None:
            kw["ssl"] = ctx
        kw.update(config.driver_options)
        return kw

    def driver_connect(self, **kw: Any) -> Any:
        raise NotImplementedError

    async def connect(self, config: PoolConfig, timeout: float) -> Any:
        kw = self.connect_kwargs(config)
        kw["password"] = await config.get_password() or ""
        kw["connect_timeout"] = timeout
        if needs_routing(config):
            return await self._connect_routed(config, timeout, kw)
        return await self._connect_one(config, kw)

    async def _connect_routed(self, config: PoolConfig, timeout: float, kw: dict[str, Any]) -> Any:
        """One host per attempt, its read_only flags checked (drivers/hosts.py)."""

        async def open_one(host: str, port: int | None, seconds: float) -> Any:
            one = {**kw, "host": host, "connect_timeout": seconds}
            one.pop("port", None)
            if port is not None:
                one["port"] = port
            return await self._connect_one(config, one)

        return await routed(self, config, timeout, open_one, MYSQL_ROLE_SQL)

    async def _connect_one(self, config: PoolConfig, kw: dict[str, Any]) -> Any:
        """One host within ``kw["connect_timeout"]`` seconds, a refused slot waited for
        (see :func:`~poolbridge.drivers.base.wait_for_slot`), then the session settings."""

        def attempt(seconds: float) -> Any:
            return self.driver_connect(**{**kw, "connect_timeout": seconds})

        conn = await wait_for_slot(attempt, float(kw["connect_timeout"]), slot_refused)
        try:
            statements = mysql_session_sql(config)
            if statements:
                async with conn.cursor() as cur:
                    for sql in statements:
                        await cur.execute(sql)
        except BaseException:
            self.terminate(conn)
            raise
        return conn

    async def close(self, conn: Any) -> None:
        await conn.ensure_closed()

    def terminate(self, conn: Any) -> None:
        with contextlib.suppress(Exception):
            conn.close()

    async def ping(self, conn: Any) -> None:
        await conn.ping(reconnect=False)

    def in_transaction(self, conn: Any) -> bool | None:
        status = conn.server_status
        if status is None:
            return None
        return bool(status & SERVER_STATUS_IN_TRANS)

    async def rollback(self, conn: Any) -> None:
        await conn.rollback()

    def error_modules(self) -> tuple[Any, ...]:
        """The driver's error modules (with OperationalError/InterfaceError)."""
        return ()

    cancel_breaks_connection = True

    def is_connection_error(self, exc: BaseException) -> bool:
        if isinstance(exc, asyncio.CancelledError):
            return True  # a cancelled query leaves unread packets on the socket
        if isinstance(exc, OSError | ConnectionError) or demoted(self.routed_config, exc):
            return True
        for mod in self.error_modules():
            if isinstance(exc, mod.InterfaceError):
                return True
            if isinstance(exc, mod.OperationalError):
                return bool(exc.args) and exc.args[0] in MYSQL_CONNECTION_ERRNOS
        return False
