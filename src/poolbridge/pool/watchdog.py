"""A client-side backstop for ``statement_timeout`` (standard library only).

The server stops a statement at ``statement_timeout``, but when no answer can arrive (a
stalled network, a frozen server) a driver without its own per-operation timeout (psycopg,
aiomysql) waits on the socket forever. :class:`StatementWatchdog` arms a timer around one
operation; if the operation is still waiting when the timer fires, a ``sever`` callback cuts
the connection's socket (:func:`shutdown_socket`), so the blocked read fails at once with the
driver's connection error and the pool discards the connection.

Used by the SQLAlchemy adapter (cursor-execute events) and by the psycopg_pool subclass
(every ``AsyncConnection.wait``); the engine's drivers pass :func:`backstop` to their own
per-operation timeouts instead.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable

__all__ = ["Armed", "StatementWatchdog", "backstop", "shutdown_socket"]

logger = logging.getLogger("poolbridge.watchdog")

#: the smallest margin past statement_timeout before the client gives up (seconds)
MIN_MARGIN = 0.5


def backstop(statement_timeout: float | None) -> float | None:
    """How long the client waits for an answer when ``statement_timeout`` is set (None:
    unbounded): 20 % past it, at least :data:`MIN_MARGIN` s, so the server's own timeout
    (an error the caller can handle, on a connection that stays usable) normally wins."""
    if statement_timeout is None:
        return None
    return statement_timeout + max(MIN_MARGIN, 0.2 * statement_timeout)


def shutdown_socket(fd: int) -> None:
    """Shut a connected socket down in both directions through a duplicate of ``fd``.

    A reader blocked on ``fd`` (an event loop's ``add_reader``) sees end-of-file now; the fd
    itself stays open (closing it under a registered reader could let the number be reused)
    and its owner closes it as it discards the broken connection."""
    sock = socket.socket(fileno=os.dup(fd))
    try:
        sock.shutdown(socket.SHUT_RDWR)
    finally:
        sock.close()


class Armed:
    """One armed timer: :meth:`cancel` it when the operation ends; ``fired`` says whether
    the connection was cut meanwhile."""

    __slots__ = ("_handle", "fired")

    def __init__(self) -> None:
        self._handle: asyncio.TimerHandle | None = None
        self.fired = False

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class StatementWatchdog:
    """Cuts a connection whose operation got no answer within ``limit`` seconds.

    ``what`` names the pool/driver in the warning logged when it fires.
    """

    __slots__ = ("limit", "what")

    def __init__(self, limit: float, *, what: str) -> None:
        self.limit = limit
        self.what = what

    def arm(self, sever: Callable[[], None]) -> Armed:
        """Start the timer for one operation on the running loop (a no-op outside one);
        ``sever`` is called on expiry and must cut the connection without blocking."""
        armed = Armed()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return armed
        armed._handle = loop.call_later(self.limit, self._fire, armed, sever)
        return armed

    def _fire(self, armed: Armed, sever: Callable[[], None]) -> None:
        armed._handle = None
        armed.fired = True
        try:
            sever()
        except Exception:  # already closed, no socket: the operation fails on its own
            logger.debug("%s: cutting a connection failed", self.what, exc_info=True)
            return
        logger.warning(
            "%s: no answer within %.1f s (statement_timeout backstop): connection cut",
            self.what, self.limit,
        )  # fmt: skip
