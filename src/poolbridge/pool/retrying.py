"""``poolbridge.retry``: re-run an operation the caller declares idempotent when the
connection under it was lost.

The pool already retries connection *establishment* (:mod:`poolbridge.pool.retry`) and
replaces dead connections; it never re-runs a user's query, because only the user knows
whether running it twice is harmless. For operations that are, this helper retries them on
connection-class errors only (server restart, killed backend, cut TCP connection, MySQL
``wait_timeout``) with capped exponential backoff and jitter. Any other error (a constraint
violation, a syntax error, a statement timeout, PoolTimeout from an exhausted pool) is
raised at once.

As a decorator::

    @poolbridge.retry(attempts=5)
    async def load_user(pool, user_id): ...

    @poolbridge.retry                    # defaults: 3 attempts, 0.1 s .. 2 s backoff
    async def refresh(): ...

As a loop of attempts, for a block of code (a context manager cannot re-run its own body)::

    async for attempt in poolbridge.retry(attempts=3):
        async with attempt:
            async with pool.acquire() as conn:
                rows = await conn.fetch("SELECT ...")

For an operation that writes through a read-write (or ``primary``) pool, pass
``read_write=True``: a "this server refuses writes" error (SQLSTATE 25006; MySQL/MariaDB
1290, 1792, 1836) then also counts, since for such a pool it means the connection reached
a host that is no longer the primary (a switchover demoted it); the pool's routing sends the
next attempt to the host that now accepts writes (see :func:`is_wrong_host_error`).

Error classes are recognised by module and class name and by SQLSTATE / MySQL error code,
so this module imports no driver (see :func:`is_connection_error` for the table).
"""

from __future__ import annotations

import asyncio
import errno
import functools
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from time import monotonic
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, overload

from poolbridge.config.model import RetryPolicy
from poolbridge.errors import ConfigError
from poolbridge.pool.retry import backoff_delay

__all__ = [
    "MYSQL_READ_ONLY_CODES",
    "READ_ONLY_SQLSTATE",
    "Attempt",
    "Retrying",
    "is_connection_error",
    "is_read_only_error",
    "is_wrong_host_error",
    "retry",
]

logger = logging.getLogger("poolbridge.retry")

P = ParamSpec("P")
T = TypeVar("T")

#: PostgreSQL SQLSTATEs meaning "this connection is gone or cannot be had right now":
#: class 08 (connection exception), admin/crash shutdown, cannot connect now (starting up),
#: and the server's idle timeouts, which end the session (idle_session_timeout,
#: idle_in_transaction_session_timeout)
_PG_CONNECTION_STATES = ("57P01", "57P02", "57P03", "57P05", "25P03")

#: MySQL/MariaDB client and server error codes meaning the connection was lost or refused:
#: the one list (the aiomysql/asyncmy shims discard a connection on these codes too).
MYSQL_CONNECTION_CODES = frozenset(
    {
        1053,  # ER_SERVER_SHUTDOWN
        1077,  # ER_NORMAL_SHUTDOWN
        1927,  # ER_CONNECTION_KILLED (MariaDB: KILL of the session)
        2002,  # CR_CONNECTION_ERROR
        2003,  # CR_CONN_HOST_ERROR (cannot connect)
        2006,  # CR_SERVER_GONE_ERROR (e.g. after wait_timeout)
        2013,  # CR_SERVER_LOST (lost during query)
        2055,  # CR_SERVER_LOST_EXTENDED
        4031,  # ER_CLIENT_INTERACTION_TIMEOUT (disconnected for inactivity)
    }
)

#: "this server refuses writes": SQLSTATE 25006 (read_only_sql_transaction) ...
READ_ONLY_SQLSTATE = "25006"
#: ... and MySQL/MariaDB 1290 (running with --read-only), 1792 (read-only transaction),
#: 1836 (read-only mode)
MYSQL_READ_ONLY_CODES = frozenset({1290, 1792, 1836})

_CLOSED_WORDS = ("closed", "lost", "terminat", "not connected", "broken")
_CHAIN_DEPTH = 8


def _mro_names(exc: BaseException) -> list[tuple[str, str]]:
    return [(cls.__module__, cls.__name__) for cls in type(exc).__mro__]


def _one_is_connection_error(exc: BaseException) -> bool:
    """The rule for one exception object, without following its cause."""
    if isinstance(exc, ConnectionError | asyncio.IncompleteReadError):
        return True
    if isinstance(exc, OSError) and exc.errno in (
        errno.ECONNREFUSED, errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED,
        errno.ENOTCONN, errno.ESHUTDOWN,
    ):  # fmt: skip
        return True
    names = _mro_names(exc)
    top = names[0][0].split(".", 1)[0]
    message = str(exc).lower()

    # SQLAlchemy marks errors that invalidated the connection.
    if top == "sqlalchemy":
        return bool(getattr(exc, "connection_invalidated", False))

    # PostgreSQL drivers: SQLSTATE first (asyncpg/psycopg: sqlstate, psycopg2: pgcode).
    state = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    if top in ("asyncpg", "psycopg", "psycopg2") and isinstance(state, str):
        return state.startswith("08") or state in _PG_CONNECTION_STATES
    if top == "asyncpg":
        if any(name == "InternalClientError" for _, name in names):
            # the protocol state is broken, e.g. a killed backend's FATAL message processed
            # while idle, before the socket closes: "another operation (2) is in progress"
            return True
        # client-side: "connection is closed", "connection was closed in the middle of operation"
        return any(name == "InterfaceError" for _, name in names) and (
            "connection" in message and "closed" in message
        )
    if top in ("psycopg", "psycopg2"):
        # no SQLSTATE: the failure happened on the client side of the wire
        if any(name == "OperationalError" for _, name in names):
            return True
        return any(name == "InterfaceError" for _, name in names) and any(
            w in message for w in _CLOSED_WORDS
        )

    # MySQL drivers: aiomysql raises pymysql's errors; asyncmy has its own with the same codes.
    if top in ("pymysql", "aiomysql", "asyncmy", "MySQLdb"):
        if any(name == "InterfaceError" for _, name in names):
            return True
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        return code in MYSQL_CONNECTION_CODES
    return False


def is_read_only_error(exc: BaseException) -> bool:
    """True when ``exc`` itself (no cause followed) says the server refuses writes:
    SQLSTATE 25006 (asyncpg/psycopg ``sqlstate``, psycopg2 ``pgcode``) or a MySQL/MariaDB
    error whose code (``args[0]``) is in :data:`MYSQL_READ_ONLY_CODES`."""
    code = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    if code == READ_ONLY_SQLSTATE:
        return True
    args: tuple[Any, ...] = getattr(exc, "args", ())
    return bool(args) and isinstance(args[0], int) and args[0] in MYSQL_READ_ONLY_CODES


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc``, the errors it was raised from (``__cause__``) and SQLAlchemy's ``.orig`` of
    each: what the classifiers look at (``__context__`` is an unrelated earlier error)."""
    out: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    for _ in range(_CHAIN_DEPTH):
        if current is None or id(current) in seen:
            break
        seen.add(id(current))
        out.append(current)
        orig = getattr(current, "orig", None)
        if isinstance(orig, BaseException):
            out.append(orig)
        current = current.__cause__
    return out


def is_wrong_host_error(exc: BaseException) -> bool:
    """True when ``exc`` (or an error it was raised from) says the server refuses writes.

    For a read-write or primary pool this means the connection is on the wrong host: the
    host was demoted (a switchover set MySQL's ``read_only``, a former primary came back as
    a standby). The engine-backed drivers already treat such a connection as broken for
    those pools (:mod:`poolbridge.drivers.hosts`), so the next attempt gets a connection
    on the host that accepts writes now. For any other pool it is an ordinary error (a
    write sent to a replica on purpose)."""
    return any(is_read_only_error(e) for e in _chain(exc))


def is_connection_error(exc: BaseException, *, read_write: bool = False) -> bool:
    """True if ``exc`` (or an error it was raised from) means the connection was lost or
    could not be had, for any driver poolbridge supports:

    - builtins: ConnectionError (refused, reset, aborted, broken pipe), IncompleteReadError;
    - asyncpg / psycopg / psycopg2 (aiopg): SQLSTATE class 08, 57P01 (admin shutdown, also
      pg_terminate_backend), 57P02, 57P03; without SQLSTATE: asyncpg InterfaceError
      "connection is closed" and InternalClientError (protocol state broken),
      psycopg/psycopg2 OperationalError (client side) and
      InterfaceError about a closed connection;
    - pymysql (aiomysql) / asyncmy: InterfaceError, or OperationalError/InternalError with a
      code in :data:`MYSQL_CONNECTION_CODES` (2003, 2006, 2013, 1927, ...);
    - SQLAlchemy: DBAPIError with ``connection_invalidated``.

    ``__cause__`` is followed (PoolTimeout raised from a failed connect counts), and
    SQLAlchemy's ``.orig``; ``__context__`` is not (an unrelated earlier error).

    ``read_write=True`` (the operation runs on a read-write or primary pool): a "wrong
    host" error counts too (:func:`is_wrong_host_error`: SQLSTATE 25006, MySQL 1290, 1792,
    1836).
    """
    for e in _chain(exc):
        if _one_is_connection_error(e) or (read_write and is_read_only_error(e)):
            return True
    return False


class Attempt:
    """One try inside ``async for attempt in retry(...)``; use it as ``async with attempt``.

    Leaving the block without an error ends the loop. A connection-class error is swallowed
    when another attempt is left (the loop sleeps, then yields the next attempt); any other
    error, or one on the last attempt, propagates.
    """

    def __init__(self, retrying: Retrying, number: int, last: bool) -> None:
        self.retrying = retrying
        self.number = number
        self.last = last
        self.succeeded = False
        self.error: BaseException | None = None

    async def __aenter__(self) -> Attempt:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc is None:
            self.succeeded = True
            return False
        if self.last or not isinstance(exc, Exception) or not self.retrying.should_retry(exc):
            return False
        self.error = exc
        return True


class Retrying:
    """A retry policy for idempotent operations; what :func:`retry` returns with arguments.

    Callable as a decorator of async functions, and async-iterable as a loop of
    :class:`Attempt`. ``deadline`` (seconds, None = none) bounds the whole sequence: no
    sleep runs past it and no new attempt starts after it. ``retry_on`` replaces the
    connection-error test (e.g. to also retry a statement timeout). ``read_write=True``
    declares that the operation runs on a read-write (or primary) pool: a "wrong host"
    error (:func:`is_wrong_host_error`) is then retried like a lost connection.
    """

    def __init__(
        self,
        *,
        attempts: int = 3,
        initial_backoff: float = 0.1,
        max_backoff: float = 2.0,
        jitter: float = 0.1,
        deadline: float | None = None,
        retry_on: Callable[[BaseException], bool] | None = None,
        read_write: bool = False,
    ) -> None:
        problems = []
        if attempts < 1:
            problems.append(f"attempts must be >= 1 (got {attempts})")
        if initial_backoff < 0 or max_backoff < 0:
            problems.append(
                f"backoffs must be >= 0 (got initial_backoff={initial_backoff}, "
                f"max_backoff={max_backoff})"
            )
        if not 0 <= jitter <= 1:
            problems.append(f"jitter must be within [0, 1] (got {jitter})")
        if deadline is not None and deadline <= 0:
            problems.append(f"deadline must be > 0 seconds or None (got {deadline})")
        if read_write and retry_on is not None:
            problems.append(
                "read_write=True extends the built-in connection-error test; with retry_on "
                "your predicate decides alone (call is_connection_error(exc, read_write=True) "
                "in it)"
            )
        if problems:
            raise ConfigError(problems, source="poolbridge.retry()")
        self.policy = RetryPolicy(
            attempts=attempts,
            initial_backoff=initial_backoff,
            max_backoff=max_backoff,
            jitter=jitter,
        )
        self.deadline = deadline
        self.retry_on = retry_on
        self.read_write = read_write
        #: retries performed by this policy object (all calls together)
        self.retries = 0

    def should_retry(self, exc: BaseException) -> bool:
        if self.retry_on is not None:
            return self.retry_on(exc)
        return is_connection_error(exc, read_write=self.read_write)

    async def __aiter__(self) -> AsyncIterator[Attempt]:
        started = monotonic()
        attempts = self.policy.attempts
        previous: BaseException | None = None
        for number in range(1, attempts + 1):
            last = number == attempts
            overran = self.deadline is not None and monotonic() - started >= self.deadline
            if previous is not None and overran:
                raise previous  # the sleep overran the deadline: no new attempt
            attempt = Attempt(self, number, last)
            yield attempt
            if attempt.error is None:
                # success, or the body raised and the error propagated (generator closed)
                return
            delay = backoff_delay(self.policy, number)
            if self.deadline is not None:
                remaining = self.deadline - (monotonic() - started)
                if remaining <= delay:
                    # no time for another try: surface the connection error we swallowed
                    raise attempt.error
            previous = attempt.error
            self.retries += 1
            logger.warning(
                "retrying idempotent operation after %s: %s (attempt %d/%d, sleeping %.3f s)",
                type(attempt.error).__name__, attempt.error, number + 1, attempts, delay,
            )  # fmt: skip
            await asyncio.sleep(delay)

    async def call(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Await ``fn(*args, **kwargs)``, retrying it under this policy."""
        async for attempt in self:
            async with attempt:
                return await fn(*args, **kwargs)
        raise AssertionError("unreachable: the last attempt returns or raises")  # pragma: no cover

    def __call__(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        """Decorate an async function declared idempotent."""
        if not (
            inspect.iscoroutinefunction(fn)
            or inspect.iscoroutinefunction(type(fn).__call__)  # an object with async __call__
        ):
            raise TypeError(f"poolbridge.retry decorates async functions (got {fn!r})")

        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            return await self.call(fn, *args, **kwargs)

        return wrapper


@overload
def retry(fn: Callable[P, Awaitable[T]], /) -> Callable[P, Awaitable[T]]: ...


@overload
def retry(
    fn: None = None,
    /,
    *,
    attempts: int = 3,
    initial_backoff: float = 0.1,
    max_backoff: float = 2.0,
    jitter: float = 0.1,
    deadline: float | None = None,
    retry_on: Callable[[BaseException], bool] | None = None,
    read_write: bool = False,
) -> Retrying: ...


def retry(
    fn: Callable[P, Awaitable[T]] | None = None,
    /,
    *,
    attempts: int = 3,
    initial_backoff: float = 0.1,
    max_backoff: float = 2.0,
    jitter: float = 0.1,
    deadline: float | None = None,
    retry_on: Callable[[BaseException], bool] | None = None,
    read_write: bool = False,
) -> Any:
    """Retry an idempotent operation on connection-class errors; see the module docstring.

    ``@retry`` decorates with the defaults; ``retry(...)`` returns a :class:`Retrying` that
    decorates or loops. ``attempts`` counts the first try; the sleep before retry *n* is
    ``min(max_backoff, initial_backoff * 2**(n-1))`` times a random factor in
    ``[1-jitter, 1+jitter]``. ``read_write=True``: the operation runs on a read-write pool,
    so "wrong host" errors (SQLSTATE 25006, MySQL 1290/1792/1836) are retried too.
    """
    policy = Retrying(
        attempts=attempts,
        initial_backoff=initial_backoff,
        max_backoff=max_backoff,
        jitter=jitter,
        deadline=deadline,
        retry_on=retry_on,
        read_write=read_write,
    )
    if fn is not None:
        return policy(fn)
    return policy
