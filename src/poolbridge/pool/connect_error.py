"""The one error a pool raises when it cannot open its first connections.

Every pool kind (the engine, psycopg_pool, SQLAlchemy's pool class, the ORMs on top of
them) reaches the server through a different driver, and each driver reports an
unreachable server or a rejected login in its own way (``ConnectionRefusedError``,
``OperationalError``, ``InvalidPasswordError``, ``PoolTimeout`` ...). At open, where the
caller's question is "can this application reach its database", every pool passes the error
through :func:`open_error`, which gives one :class:`~poolbridge.errors.ConnectError`
naming ``host:port``, user and database (never the password) and chaining the driver's
error as ``__cause__``.

Whether an error is worth retrying is driver knowledge: it lives in
:mod:`poolbridge.drivers.connect_errors`; callers pass the verdict in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from poolbridge.config.model import PoolConfig
from poolbridge.errors import ConnectError, PoolBridgeError, PoolTimeout

__all__ = ["DEFAULT_PORTS", "WarmUpWatch", "endpoint", "open_error"]

#: the port a driver uses when the URL names none
DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306}

#: at most this much of the driver's message goes into ConnectError's (the whole text is in
#: the chained cause)
_DETAIL_CHARS = 240


def endpoint(config: PoolConfig) -> tuple[str, int | None]:
    """``(host, port)`` the pool connects to: the URL's host (or the socket directory of a
    ``?host=`` query, or ``localhost``) and port (or the backend's default); for SQLite the
    database file and None."""
    u = config.database_url
    if config.backend == "sqlite":
        return (u.database or ":memory:", None)
    host = u.host or u.query.get("host") or u.query.get("unix_socket") or "localhost"
    return (host, u.port or DEFAULT_PORTS.get(config.backend))


def _detail(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0].strip() if text else ""
    if len(first) > _DETAIL_CHARS:
        first = first[: _DETAIL_CHARS - 3] + "..."
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def open_error(
    config: PoolConfig,
    exc: BaseException,
    *,
    cause: BaseException | None = None,
    attempts: int | None = None,
    retryable: bool = True,
    error_class: type[ConnectError] = ConnectError,
) -> BaseException:
    """The error an open raises for ``exc``: ``raise open_error(config, exc, ...)``.

    A connection that could not be established (any driver error, ``OSError``, a timeout,
    a ``PoolTimeout`` of a pool that never filled) becomes a ConnectError whose
    ``__cause__`` is ``cause`` (default: ``exc``; pass the driver's last error when ``exc``
    is a pool's own timeout). Errors that already say what went wrong are returned as they
    are: a ConnectError, poolbridge's other errors (HookError from on_connect, ConfigError,
    PoolClosed) and non-``Exception``\\s (cancellation). ``error_class`` is a ConnectError
    subclass that is also what the stack's stock open raises (psycopg_pool's PoolTimeout,
    Tortoise's DBConnectionError), so existing ``except`` clauses keep working.
    """
    if not isinstance(exc, Exception) or isinstance(exc, ConnectError):
        return exc
    if isinstance(exc, PoolBridgeError) and not isinstance(exc, PoolTimeout):
        return exc
    if cause is None:
        cause = exc
    host, port = endpoint(config)
    u = config.database_url
    where = f"{host}:{port}" if port is not None else host
    who = []
    if u.username:
        who.append(f"user {u.username!r}")
    if u.database and config.backend != "sqlite":
        who.append(f"database {u.database!r}")
    tail = f" ({', '.join(who)})" if who else ""
    if not retryable:
        how = "not retried: retrying cannot fix this"
    elif attempts:
        how = f"{attempts} failed attempt{'s' if attempts != 1 else ''}"
    else:
        how = ""
    message = f"pool {config.name!r}: cannot connect to {where}{tail}: {_detail(cause)}"
    if how:
        message += f" [{how}]"
    err = error_class(message, host=host, port=port, attempts=attempts, retryable=retryable)
    err.__cause__ = cause
    err.__suppress_context__ = True
    return err


class WarmUpWatch:
    """Bounds the warm-up of a pool that retries connections on its own (psycopg_pool
    reconnects with its own backoff until ``reconnect_timeout``).

    The pool reports each failed connection attempt with :meth:`failure`; :meth:`run`
    awaits the pool's warm-up and ends it early with a ConnectError at the first error
    retrying cannot cure (``is_permanent``), or once ``config.retry.attempts`` attempts per
    connection of ``min_size`` have failed — the engine's retry budget at open. Failures
    after the first successful warm-up are not counted.
    """

    def __init__(
        self,
        config: PoolConfig,
        is_permanent: Callable[[BaseException], bool],
        error_class: type[ConnectError] = ConnectError,
    ) -> None:
        self.config = config
        self.is_permanent = is_permanent
        self.error_class = error_class
        self.failed = 0
        self.last: BaseException | None = None
        self.permanent = False
        self.done = False
        self._budget = max(1, config.retry.attempts) * max(1, config.min_size)
        self._tripped: asyncio.Future[None] | None = None

    @property
    def tripped(self) -> bool:
        return self.permanent or self.failed >= self._budget

    def failure(self, exc: BaseException) -> None:
        """Count one failed connection attempt (ignored once warmed up)."""
        if self.done or not isinstance(exc, Exception):
            return
        self.failed += 1
        self.last = exc
        if self.is_permanent(exc):
            self.permanent = True
        if self.tripped and self._tripped is not None and not self._tripped.done():
            self._tripped.set_result(None)

    async def run(
        self, warm_up: Coroutine[Any, Any, None], *, close: Callable[[], Awaitable[None]]
    ) -> None:
        """Await ``warm_up``; on failure (or a trip) ``close()`` the pool and raise a
        ConnectError chaining the last connection error."""
        self._tripped = asyncio.get_running_loop().create_future()
        if self.tripped:
            self._tripped.set_result(None)
        task = asyncio.ensure_future(warm_up)
        error: BaseException | None = None
        try:
            await asyncio.wait({task, self._tripped}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                task.result()
                self.done = True
                return
        except Exception as exc:
            error = exc
        finally:
            self._tripped = None
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await close()
        if error is None:  # tripped before the warm-up timed out
            error = self.last or ConnectionError("connection attempts failed")
        if isinstance(self.last, PoolBridgeError):  # on_connect failed (HookError): say so
            error = self.last
        raise open_error(
            self.config,
            error,
            cause=self.last or error,
            attempts=self.failed,
            retryable=not self.permanent,
            error_class=self.error_class,
        )
