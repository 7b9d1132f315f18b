"""A psycopg ``AsyncConnection`` subclass bounding every wait for the server by the
statement_timeout backstop (:mod:`poolbridge.pool.watchdog`).

psycopg has no client-side command timeout: with the network stalled a statement waits for
an answer until the link heals, whatever ``statement_timeout`` says (the server never even
sees the query). Every operation that talks to the server — cursor execute/fetch, commit,
rollback, COPY, pipeline sync — goes through ``AsyncConnection.wait``; the subclass arms a
:class:`~poolbridge.pool.watchdog.StatementWatchdog` around it that shuts the socket down
when no answer came within the limit. The caller gets ``psycopg.OperationalError`` (a
connection-class error) and psycopg_pool discards the connection (its status is BAD).
``notifies()`` waits for notifications, not for an answer: it is not watched.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import psycopg

from poolbridge.pool.watchdog import StatementWatchdog, shutdown_socket

__all__ = ["watched_connection_class"]


def watched_connection_class(
    base: type[psycopg.AsyncConnection[Any]], limit: float, *, what: str
) -> type[psycopg.AsyncConnection[Any]]:
    """A subclass of ``base`` (psycopg_pool's ``connection_class``, possibly an ORM's own)
    whose waits for the server are cut after ``limit`` seconds without an answer."""
    watchdog = StatementWatchdog(limit, what=what)

    class WatchedAsyncConnection(base):  # type: ignore[valid-type,misc]
        _pb_listening = 0  # > 0 while notifies() runs: waiting is its job

        async def wait(self, gen: Any, *args: Any, **kwargs: Any) -> Any:
            if self._pb_listening:
                return await super().wait(gen, *args, **kwargs)
            pgconn = self.pgconn
            armed = watchdog.arm(lambda: shutdown_socket(pgconn.socket))
            try:
                result = await super().wait(gen, *args, **kwargs)
            except psycopg.Error as exc:
                if not armed.fired:
                    raise
                raise psycopg.OperationalError(
                    f"no answer from the server within {watchdog.limit:g} s "
                    "(statement_timeout backstop): connection cut"
                ) from exc
            finally:
                armed.cancel()
            if armed.fired:  # the answer raced the cut: the socket is dead all the same
                pgconn.finish()
            return result

        async def notifies(self, *args: Any, **kwargs: Any) -> AsyncGenerator[Any, None]:
            self._pb_listening += 1
            try:
                async for notify in super().notifies(*args, **kwargs):
                    yield notify
            finally:
                self._pb_listening -= 1

    WatchedAsyncConnection.__name__ = WatchedAsyncConnection.__qualname__ = (
        f"Watched{base.__name__}"
    )
    return WatchedAsyncConnection
