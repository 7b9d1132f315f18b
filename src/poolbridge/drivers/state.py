"""A connection's local state as the driver shims read it on every checkout and checkin.

Each driver has two plain functions of the connection, with no I/O: ``<driver>_is_closed``
(the driver knows the connection is closed, or the server hung up) and
``<driver>_reusable`` (open and known to be outside a transaction). The shims' methods
``is_closed()``/``reusable()`` call them (adding the retirement of a fallback connection
when the pool routes between hosts), and the engine calls them directly on its hot path
(:meth:`poolbridge.drivers.base.BaseShim.state_checks`): plain functions, so the compiled
build (engine/build.py) runs them as C without a Python frame. The private members read
here are listed in docs/internals.md and pinned by tests/test_driver_private_members.py.

Standard library only, and no import of any driver.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = [
    "SERVER_STATUS_IN_TRANS",
    "aiomysql_is_closed",
    "aiomysql_reusable",
    "aiopg_is_closed",
    "aiopg_reusable",
    "aiosqlite_is_closed",
    "aiosqlite_reusable",
    "asyncmy_is_closed",
    "asyncmy_reusable",
    "asyncpg_is_closed",
    "asyncpg_reusable",
]

#: MySQL/MariaDB: the IN_TRANS bit of the server status of the last OK/EOF packet
SERVER_STATUS_IN_TRANS: Final = 0x0001

#: psycopg2.extensions.TRANSACTION_STATUS_IDLE
_PG_IDLE: Final = 0


def asyncmy_is_closed(conn: Any) -> bool:
    """Closed by us (``_connected`` is what the ``connected`` property returns) or by the
    server (the transport is closing: EOF or a socket error)."""
    if not conn._connected:
        return True
    transport = conn._transport
    return transport is not None and transport.is_closing() is True


def asyncmy_reusable(conn: Any) -> bool:
    """Connected and outside a transaction. A transport the server closed while the
    connection was held is caught by :func:`asyncmy_is_closed` at the next checkout (and by
    maintenance), as for one closed while idle."""
    return not conn.server_status & SERVER_STATUS_IN_TRANS and conn._connected is True


def aiomysql_is_closed(conn: Any) -> bool:
    """Closed by us (``_writer is None`` is what the ``closed`` property returns) or by the
    server (EOF seen, e.g. KILL)."""
    if conn._writer is None:
        return True
    reader = conn._reader
    return reader is not None and reader.at_eof() is True


def aiomysql_reusable(conn: Any) -> bool:
    """Open and outside a transaction (a stream the server closed while the connection was
    held is caught by :func:`aiomysql_is_closed` at the next checkout)."""
    status = conn.server_status
    return status is not None and not status & SERVER_STATUS_IN_TRANS and conn._writer is not None


def aiosqlite_is_closed(conn: Any) -> bool:
    """The sqlite3 connection is gone or the worker thread stopped."""
    return conn._connection is None or not conn._running


def aiosqlite_reusable(conn: Any) -> bool:
    """Open (as :func:`aiosqlite_is_closed` tests it) and outside a transaction."""
    raw = conn._connection
    return raw is not None and conn._running is True and raw.in_transaction is False


def asyncpg_is_closed(conn: Any) -> bool:
    """asyncpg's own answer (public API)."""
    return bool(conn.is_closed())


def asyncpg_reusable(conn: Any) -> bool:
    """Outside a transaction and open (public API)."""
    return not conn.is_in_transaction() and not conn.is_closed()


def aiopg_is_closed(conn: Any) -> bool:
    """aiopg's own answer (public API)."""
    return bool(conn.closed)


def aiopg_reusable(conn: Any) -> bool:
    """Open and idle at the libpq level (public API: ``raw`` is psycopg2's connection)."""
    return not conn.closed and conn.raw.get_transaction_status() == _PG_IDLE
