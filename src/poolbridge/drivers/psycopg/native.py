"""What a pool knows about, or does to, a psycopg connection without a round trip.

psycopg has no engine shim (its pools are psycopg_pool's); this is the psycopg side of the
questions every adapter asks a driver (:mod:`poolbridge.drivers.registry`): closed yet,
cut it now, which backend. Only psycopg's public API is used (``closed``, ``pgconn``,
``info.backend_pid``).
"""

from __future__ import annotations

from typing import Any

from poolbridge.pool.watchdog import shutdown_socket

__all__ = ["PsycopgNative"]

#: libpq's CONNECTION_OK
_CONNECTION_OK = 0


class PsycopgNative:
    """is_closed / sever / local_server_id for ``psycopg.AsyncConnection``."""

    name = "psycopg"
    backend = "postgresql"

    def is_closed(self, conn: Any) -> bool:
        """Closed, or the server closed it (killed backend, restart): a non-blocking
        ``consume_input`` reads a pending close."""
        if conn.closed:
            return True
        pgconn = conn.pgconn
        pgconn.consume_input()
        return bool(pgconn.status != _CONNECTION_OK)

    def sever(self, conn: Any) -> None:
        """Shut the socket down (not closed: its fd stays registered with the loop until
        psycopg discards the connection); a pending wait fails with OperationalError."""
        shutdown_socket(conn.pgconn.socket)

    def local_server_id(self, conn: Any) -> int | str:
        return int(conn.info.backend_pid)
