"""Errors raised by poolbridge, named for what the caller must do differently.

Every error derives from :class:`PoolBridgeError`. Errors that have a natural builtin
counterpart also derive from it (``ConfigError`` is a ``ValueError``, ``PoolTimeout`` a
``TimeoutError``, ``AdapterNotAvailable`` an ``ImportError``) so that existing ``except``
clauses keep working.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AdapterNotAvailable",
    "ConfigError",
    "ConnectError",
    "ConnectionBudgetWarning",
    "HookError",
    "PoolBridgeError",
    "PoolClosed",
    "PoolTimeout",
    "TooManyRequests",
    "UnsupportedOptionError",
    "UnsupportedOptionWarning",
    "WrongEventLoop",
]


class PoolBridgeError(Exception):
    """Root of every error poolbridge raises."""


class ConfigError(PoolBridgeError, ValueError):
    """A configuration is invalid. ``problems`` lists every problem, one line each.

    Each line names the field, the rule and the value that broke it, e.g.
    ``max_size must be >= min_size (got max_size=2, min_size=5)``.
    """

    def __init__(self, problems: Sequence[str], *, source: str | None = None) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        self.source = source
        where = f" in {source}" if source else ""
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''} in pool configuration{where}:"
        super().__init__("\n".join([head, *(f"  - {p}" for p in self.problems)]))


class ConnectError(PoolBridgeError):
    """The pool could not open its first connections: the server refused or timed out the
    connection, its name did not resolve, or it rejected the login (authentication, unknown
    database, a bad option).

    Raised by ``open_pool()`` and every adapter's warm-up (``create_async_engine``,
    Tortoise's ``init``, peewee-async's ``aio_connect``) in place of the driver's own error,
    which is chained as ``__cause__``. The message names the pool, ``host:port``, the user
    and the database, never the password. ``retryable`` is False for an error that retrying
    cannot cure (authentication, unknown database, bad option): such an error is not
    retried. ``attempts`` counts the connection attempts that failed while opening.
    """

    def __init__(
        self,
        message: str,
        *,
        host: str,
        port: int | None,
        attempts: int | None = None,
        retryable: bool = True,
    ) -> None:
        super().__init__(message)
        self.host = host
        self.port = port
        self.attempts = attempts
        self.retryable = retryable


class UnsupportedOptionError(PoolBridgeError):
    """A knob set explicitly in the config cannot be honoured by the chosen adapter."""

    def __init__(self, adapter: str, problems: dict[str, str]) -> None:
        self.adapter = adapter
        self.problems = dict(problems)
        lines = [f"  - {field}: {why}" for field, why in self.problems.items()]
        super().__init__(
            f"adapter {adapter!r} cannot honour {len(self.problems)} option(s):\n"
            + "\n".join(lines)
        )


class UnsupportedOptionWarning(UserWarning):
    """A knob left at a default the chosen adapter cannot honour (emitted once at open)."""


class ConnectionBudgetWarning(UserWarning):
    """The server reports fewer free connections than the pool may open (max_size).

    A UserWarning, not a ResourceWarning: Python hides ResourceWarning by default, and this
    one predicts a production outage (see :mod:`poolbridge.pool.budget`).
    """


class AdapterNotAvailable(PoolBridgeError, ImportError):
    """The adapter's ORM or driver is not installed; the message names the extra to install."""


class PoolClosed(PoolBridgeError):
    """The pool was closed; no connection can be acquired from it any more."""


class PoolTimeout(PoolBridgeError, TimeoutError):
    """No connection became free within ``acquire_timeout``.

    The message carries diagnostics: pool name, max_size, connections in use, callers
    waiting and the age of the longest-held connections.
    """


class TooManyRequests(PoolBridgeError):
    """``max_waiting`` callers are already queued; this caller was refused at once."""


class HookError(PoolBridgeError):
    """An ``on_connect`` hook failed; the new connection was discarded (cause chained)."""


class WrongEventLoop(PoolBridgeError, RuntimeError):
    """The pool was used from an event loop (or process) other than the one it was opened in."""
