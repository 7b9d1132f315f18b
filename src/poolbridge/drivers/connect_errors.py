"""Is an error at connect worth retrying? One answer per driver, one dispatcher.

A connection attempt that failed because the server is not there (refused, unreachable,
a DNS failure, a timeout, a server starting up or out of slots) may succeed a moment later;
one the server rejected for what was asked (a wrong password, an unknown role or database,
a bad startup option) or that the driver rejected before sending anything (an unknown
keyword, an invalid DSN) fails the same way every time, so retrying only delays the error
and, for authentication, adds failed logins on the server.

:func:`is_permanent_connect_error` walks the error's chain (``__cause__``, SQLAlchemy's
``.orig``) and asks the rules of the driver whose error it
meets (:mod:`poolbridge.drivers.asyncpg`, the libpq rules of
:mod:`poolbridge.drivers.base` for psycopg and aiopg, :mod:`poolbridge.drivers._mysql`
for aiomysql and asyncmy). The engine's shims, psycopg's pool and SQLAlchemy's pool class
all use it.

:func:`is_slot_refused` answers the narrower question "did the server refuse a connection
slot?" (PostgreSQL SQLSTATE 53300, MySQL/MariaDB 1040, 1203, 1226): transient, and waited
for within the caller's deadline by every connect path (the shims, SQLAlchemy's creator,
psycopg's connection class) through :func:`poolbridge.drivers.base.wait_for_slot`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from poolbridge.drivers import _mysql, asyncpg
from poolbridge.drivers.base import libpq_permanent_connect_error, libpq_slot_refused

__all__ = ["error_chain", "is_permanent_connect_error", "is_slot_refused"]

#: top-level module of an exception class -> that driver's rule
_RULES: dict[str, Callable[[BaseException], bool]] = {
    "asyncpg": asyncpg.permanent_connect_error,
    "psycopg": libpq_permanent_connect_error,
    "psycopg2": libpq_permanent_connect_error,
    "pymysql": _mysql.permanent_connect_error,
    "aiomysql": _mysql.permanent_connect_error,
    "asyncmy": _mysql.permanent_connect_error,
}

#: top-level module of an exception class -> "the server refused a connection slot"
_SLOT_RULES: dict[str, Callable[[BaseException], bool]] = {
    "asyncpg": asyncpg.slot_refused,
    "psycopg": libpq_slot_refused,
    "psycopg2": libpq_slot_refused,
    "pymysql": _mysql.slot_refused,
    "aiomysql": _mysql.slot_refused,
    "asyncmy": _mysql.slot_refused,
}

#: builtin errors a connect raises for bad arguments (an unknown keyword, a bad value, a
#: missing key, a charset the driver does not know): never cured by retrying
_ARGUMENT_ERRORS = (TypeError, ValueError, LookupError, AttributeError, NotImplementedError)


def error_chain(exc: BaseException, limit: int = 16) -> Iterator[BaseException]:
    """``exc``, then what it wraps: ``__cause__`` and ``.orig`` (SQLAlchemy's DBAPIError);
    each error once."""
    seen: set[int] = set()
    todo = [exc]
    while todo and len(seen) < limit:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        # not __context__: an error a driver handled on its way (a KeyError while parsing
        # options, say) would count as the reason the connect failed
        for nxt in (e.__cause__, getattr(e, "orig", None)):
            if isinstance(nxt, BaseException):
                todo.append(nxt)


def is_permanent_connect_error(exc: BaseException) -> bool:
    """True when ``exc`` (raised while opening a connection) cannot be cured by retrying."""
    for e in error_chain(exc):
        if isinstance(e, OSError):  # refused, reset, unreachable, DNS, timeouts
            continue
        rule = _RULES.get(type(e).__module__.partition(".")[0])
        if rule is not None:
            if rule(e):
                return True
            continue
        if isinstance(e, _ARGUMENT_ERRORS):
            return True
    return False


def is_slot_refused(exc: BaseException) -> bool:
    """True when ``exc`` (raised while opening a connection), or an error it wraps, is the
    server refusing a connection slot: worth waiting for within the caller's deadline."""
    for e in error_chain(exc):
        rule = _SLOT_RULES.get(type(e).__module__.partition(".")[0])
        if rule is not None and rule(e):
            return True
    return False
