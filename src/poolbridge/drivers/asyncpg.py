"""Engine shim for asyncpg.

Session settings, ``statement_timeout`` (ms), ``isolation_level``
(default_transaction_isolation) and ``application_name`` (the user's, else the pool name:
:func:`~poolbridge.drivers.base.pg_application_name`) go in ``server_settings`` (startup
parameters, so the full reset keeps them); a ``server_settings`` dict in ``driver_options``
is merged over them key by key (the user's keys win, poolbridge's other settings stay; a
``statement_timeout`` / ``default_transaction_isolation`` there that disagrees with the
PoolConfig knob is refused: :func:`~poolbridge.drivers.base.pg_settings_conflicts`); a
top-level ``driver_options["application_name"]`` (asyncpg.connect has no such argument)
becomes the ``application_name`` server setting, ahead of ``server_settings``' own. URL
query keys stay in a DSN, where asyncpg reads them as stock (``options``, unknown keys:
startup parameters). Transaction state comes from ``conn.is_in_transaction()`` (no I/O);
the full reset is asyncpg's own ``conn.reset()`` (rollback, CLOSE ALL, UNLISTEN *, RESET
ALL, advisory unlock).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from poolbridge.config.model import PoolConfig
from poolbridge.drivers.base import (
    BaseShim,
    client_backstop,
    pg_application_name,
    pg_merged_settings,
    pg_permanent_sqlstate,
    pg_server_settings,
    pg_settings_conflicts,
    wait_for_slot,
)
from poolbridge.drivers.hosts import PG_ROLE_SQL, demoted, needs_routing, retired, routed
from poolbridge.drivers.state import asyncpg_is_closed, asyncpg_reusable

__all__ = ["AsyncpgShim", "permanent_connect_error", "slot_refused"]


def permanent_connect_error(exc: BaseException) -> bool:
    """True when an asyncpg error at connect cannot be cured by retrying: asyncpg gives
    the server's SQLSTATE (28P01 wrong password, 3D000 unknown database, 42704 unknown
    setting ...)."""
    return pg_permanent_sqlstate(getattr(exc, "sqlstate", None))


def slot_refused(exc: BaseException) -> bool:
    """True when an asyncpg error at connect is the server refusing a connection slot
    (SQLSTATE 53300: the role's CONNECTION LIMIT, max_connections, reserved slots)."""
    return getattr(exc, "sqlstate", None) == "53300"


class AsyncpgShim(BaseShim):
    name = "asyncpg"
    backend = "postgresql"

    def connect_kwargs(self, config: PoolConfig) -> dict[str, Any]:
        u = config.database_url
        kw: dict[str, Any] = self.url_parts(config)
        if u.query:  # driver keys (sslmode, host=<socket dir>, ...) stay in a DSN
            kw["dsn"] = "postgresql://?" + urlencode(dict(u.query))
        if u.password is not None or isinstance(config.password, str):
            kw["password"] = config.password if isinstance(config.password, str) else u.password
        kw["server_settings"] = pg_server_settings(config)
        kw["timeout"] = config.connect_timeout
        if not config.statement_cache:
            kw["statement_cache_size"] = 0
        backstop = client_backstop(config)
        if backstop is not None:
            kw["command_timeout"] = backstop  # client-side, for a stalled network
        if config.ssl is not None:
            kw["ssl"] = config.ssl  # asyncpg takes libpq mode names and SSLContexts as-is
        user_settings = config.driver_options.get("server_settings")
        kw.update(config.driver_options)
        if isinstance(user_settings, Mapping):  # the user's settings win, ours stay
            kw["server_settings"] = pg_merged_settings(pg_server_settings(config), user_settings)
        if "application_name" in kw:
            # asyncpg.connect has no such argument: a top-level application_name (the first
            # source of pg_application_name) travels as the startup setting it names
            del kw["application_name"]
            settings = dict(kw["server_settings"])
            settings["application_name"] = pg_application_name(config)
            kw["server_settings"] = settings
        return kw

    def unsupported(self, config: PoolConfig) -> dict[str, str]:
        """A ``server_settings`` entry in ``driver_options`` that disagrees with
        ``statement_timeout`` / ``isolation_level``: refused, naming both values."""
        user_settings = config.driver_options.get("server_settings")
        if not isinstance(user_settings, Mapping):
            return {}
        return pg_settings_conflicts(config, user_settings, "driver_options server_settings")

    async def connect(self, config: PoolConfig, timeout: float) -> Any:
        kw = self.connect_kwargs(config)
        kw["password"] = await config.get_password()
        kw["timeout"] = timeout
        if needs_routing(config):
            return await self._connect_routed(config, timeout, kw)
        return await self._connect_one(kw, timeout)

    async def _connect_routed(self, config: PoolConfig, timeout: float, kw: dict[str, Any]) -> Any:
        """One host per attempt, checked server-side (drivers/hosts.py): asyncpg's own
        multi-host connect shares one timeout across its hosts."""

        async def open_one(host: str, port: int | None, seconds: float) -> Any:
            return await self._connect_one({**kw, "host": host, "port": port}, seconds)

        return await routed(self, config, timeout, open_one, PG_ROLE_SQL)

    async def _connect_one(self, kw: dict[str, Any], timeout: float) -> Any:
        """One host; a refused slot is waited for within ``timeout`` (see wait_for_slot)."""
        import asyncpg

        def attempt(seconds: float) -> Any:
            return asyncpg.connect(**{**kw, "timeout": seconds})

        return await wait_for_slot(attempt, timeout, slot_refused)

    async def close(self, conn: Any) -> None:
        await conn.close()

    def terminate(self, conn: Any) -> None:
        with contextlib.suppress(Exception):
            conn.terminate()

    async def ping(self, conn: Any) -> None:
        await conn.execute("SELECT 1")

    def in_transaction(self, conn: Any) -> bool | None:
        return bool(conn.is_in_transaction())

    # the checks of every checkout and checkin (drivers/state.py): state_checks() hands
    # them to the engine as they are when the pool does not route between hosts
    plain_checks = (asyncpg_is_closed, asyncpg_reusable)

    def is_closed(self, conn: Any) -> bool:
        if asyncpg_is_closed(conn):
            return True
        routed = self.routed_config
        return routed is not None and retired(conn, routed)

    def reusable(self, conn: Any) -> bool:
        return asyncpg_reusable(conn)

    async def rollback(self, conn: Any) -> None:
        await conn.execute("ROLLBACK")

    async def full_reset(self, conn: Any) -> bool:
        await conn.reset()
        return True

    def local_server_id(self, conn: Any) -> int | str:
        return int(conn.get_server_pid())

    def is_connection_error(self, exc: BaseException) -> bool:
        if super().is_connection_error(exc) or demoted(self.routed_config, exc):
            return True
        # asyncpg raises a plain InterfaceError for use of a connection it knows is closed
        return type(exc).__name__ == "InterfaceError" and "closed" in str(exc)

    def connection_error_types(self) -> tuple[type[BaseException], ...]:
        from asyncpg import exceptions as exc

        return (
            ConnectionError,
            exc.ConnectionDoesNotExistError,
            exc.PostgresConnectionError,
            exc.OperatorInterventionError,  # 57P01 admin shutdown (pg_terminate_backend)
            exc.InternalClientError,  # protocol state broken (e.g. used mid-FATAL): discard
        )
