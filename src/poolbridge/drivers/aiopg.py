"""Engine shim for aiopg (psycopg2 in async mode; always autocommit at the libpq level).

Session settings, ``statement_timeout``, ``isolation_level`` go in the libpq ``options``
(``-c name=value``), i.e. startup parameters, so ``DISCARD ALL`` (the full reset) keeps
them; the user's own ``options`` (URL, or ``driver_options`` replacing it as stock) are
merged with them (:func:`~poolbridge.drivers.base.libpq_options_for`);
``application_name`` is a conninfo key (the user's, else the pool name). Transaction
state comes from psycopg2's ``get_transaction_status()`` without I/O.
"""

from __future__ import annotations

import contextlib
from typing import Any

from poolbridge.config.model import PoolConfig
from poolbridge.drivers.base import (
    BaseShim,
    client_backstop,
    libpq_connect_timeout,
    libpq_options_conflicts,
    libpq_options_for,
    libpq_slot_refused,
    pg_application_name,
    wait_for_slot,
)
from poolbridge.drivers.hosts import PG_ROLE_SQL, demoted, needs_routing, retired, routed
from poolbridge.drivers.state import aiopg_is_closed, aiopg_reusable

__all__ = ["AiopgShim"]

# psycopg2.extensions.TRANSACTION_STATUS_*: IDLE=0, ACTIVE=1, INTRANS=2, INERROR=3, UNKNOWN=4
_IDLE, _UNKNOWN = 0, 4


class AiopgShim(BaseShim):
    name = "aiopg"
    backend = "postgresql"
    cancel_breaks_connection = True  # psycopg2 async cursors cannot be resumed mid-query

    def connect_kwargs(self, config: PoolConfig) -> dict[str, Any]:
        u = config.database_url
        parts = self.url_parts(config)
        kw: dict[str, Any] = {k: v for k, v in parts.items() if k != "database"}
        if "database" in parts:
            kw["dbname"] = parts["database"]
        kw.update(u.query)  # libpq keys (sslmode, host=<socket dir>, ...)
        if u.password is not None or isinstance(config.password, str):
            kw["password"] = config.password if isinstance(config.password, str) else u.password
        kw["application_name"] = pg_application_name(config)
        kw["connect_timeout"] = libpq_connect_timeout(config.connect_timeout)
        backstop = client_backstop(config)
        if backstop is not None:
            kw["timeout"] = backstop  # aiopg's per-operation bound, for a stalled network
        if isinstance(config.ssl, str):
            kw["sslmode"] = config.ssl
        kw.update(config.driver_options)
        # the user's options (URL, or driver_options replacing it) merged with ours
        options = libpq_options_for(config)
        if options:
            kw["options"] = options
        return kw

    def unsupported(self, config: PoolConfig) -> dict[str, str]:
        """An SSLContext; a setting in the user's libpq ``options`` that disagrees with
        ``statement_timeout`` / ``isolation_level`` (refused, naming both values)."""
        out = libpq_options_conflicts(config)
        if config.ssl is not None and not isinstance(config.ssl, str):
            out["ssl"] = "aiopg (libpq) takes an sslmode name, not an SSLContext"
        return out

    async def connect(self, config: PoolConfig, timeout: float) -> Any:
        kw = self.connect_kwargs(config)
        password = await config.get_password()
        if password is not None:
            kw["password"] = password
        if needs_routing(config):
            return await self._connect_routed(config, timeout, kw)
        return await self._connect_one(kw, timeout)

    async def _connect_routed(self, config: PoolConfig, timeout: float, kw: dict[str, Any]) -> Any:
        """One host per attempt, checked server-side (drivers/hosts.py); libpq's
        connect_timeout does not bound aiopg's async connect, the helper's timeout does."""

        async def open_one(host: str, port: int | None, seconds: float) -> Any:
            one = {**kw, "host": host}
            one.pop("port", None)
            if port is not None:
                one["port"] = port
            return await self._connect_one(one, seconds)

        return await routed(self, config, timeout, open_one, PG_ROLE_SQL)

    async def _connect_one(self, kw: dict[str, Any], timeout: float) -> Any:
        """One host. aiopg closes its socket when a task is cancelled mid-statement, while
        the backend runs on until that statement ends and keeps its slot meanwhile: a
        refused slot is waited for within ``timeout`` (see wait_for_slot)."""
        import aiopg

        def attempt(seconds: float) -> Any:
            return aiopg.connect(**{**kw, "connect_timeout": libpq_connect_timeout(seconds)})

        return await wait_for_slot(attempt, timeout, libpq_slot_refused)

    async def close(self, conn: Any) -> None:
        await conn.close()

    def terminate(self, conn: Any) -> None:
        with contextlib.suppress(Exception):
            conn.close()

    async def _execute(self, conn: Any, sql: str) -> None:
        async with conn.cursor() as cur:
            await cur.execute(sql)

    async def ping(self, conn: Any) -> None:
        await self._execute(conn, "SELECT 1")

    def in_transaction(self, conn: Any) -> bool | None:
        status = conn.raw.get_transaction_status()
        if status == _UNKNOWN:
            return None
        return bool(status != _IDLE)

    # the checks of every checkout and checkin (drivers/state.py): state_checks() hands
    # them to the engine as they are when the pool does not route between hosts
    plain_checks = (aiopg_is_closed, aiopg_reusable)

    def reusable(self, conn: Any) -> bool:
        return aiopg_reusable(conn)

    def is_closed(self, conn: Any) -> bool:
        if aiopg_is_closed(conn):
            return True
        routed = self.routed_config
        return routed is not None and retired(conn, routed)

    async def rollback(self, conn: Any) -> None:
        await self._execute(conn, "ROLLBACK")

    async def full_reset(self, conn: Any) -> bool:
        if self.in_transaction(conn) is not False:
            await self.rollback(conn)
        await self._execute(conn, "DISCARD ALL")
        return True

    def local_server_id(self, conn: Any) -> int | str:
        return int(conn.raw.get_backend_pid())

    def is_connection_error(self, exc: BaseException) -> bool:
        return super().is_connection_error(exc) or demoted(self.routed_config, exc)

    def connection_error_types(self) -> tuple[type[BaseException], ...]:
        import psycopg2  # type: ignore[import-untyped]

        return (ConnectionError, psycopg2.OperationalError, psycopg2.InterfaceError)
