"""What the driver shims share: the base class, ssl translation and session-setting SQL.

Each shim module (``drivers/<driver>.py``) is data plus glue around one driver; the rules
that are the same for every driver of a backend live here once: how ``session``,
``isolation_level``, ``statement_timeout`` and ``application_name`` become PostgreSQL
server settings or MySQL ``SET SESSION`` statements, and how ``ssl`` becomes an SSLContext.
Drivers are imported lazily (inside methods), so importing a shim imports no driver.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import re
import ssl as _ssl
from collections.abc import Awaitable, Callable, Mapping
from time import monotonic
from typing import Any, TypeVar

from poolbridge.config.model import PoolConfig
from poolbridge.drivers.hosts import needs_routing
from poolbridge.pool.rotation import SQLITE_NO_PASSWORD
from poolbridge.pool.watchdog import backstop

__all__ = [
    "MYSQL_ISOLATION",
    "PG_ISOLATION",
    "SQLITE_REFUSED",
    "BaseShim",
    "client_backstop",
    "libpq_connect_timeout",
    "libpq_escape",
    "libpq_joined_options",
    "libpq_option_settings",
    "libpq_options_conflicts",
    "libpq_options_for",
    "libpq_permanent_connect_error",
    "libpq_settings_flags",
    "libpq_slot_refused",
    "libpq_user_options",
    "libpq_words",
    "mysql_literal",
    "mysql_session_sql",
    "next_local_id",
    "pg_application_name",
    "pg_libpq_settings",
    "pg_merged_settings",
    "pg_permanent_sqlstate",
    "pg_server_settings",
    "pg_settings_conflicts",
    "pg_statement_timeout",
    "raw_scalar",
    "sqlite_cannot_honour",
    "ssl_context",
    "wait_for_slot",
]

T = TypeVar("T")

PG_ISOLATION: Mapping[str, str] = {
    "read_committed": "read committed",
    "repeatable_read": "repeatable read",
    "serializable": "serializable",
}
MYSQL_ISOLATION: Mapping[str, str] = {
    "read_committed": "READ COMMITTED",
    "repeatable_read": "REPEATABLE READ",
    "serializable": "SERIALIZABLE",
}

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_local_ids = itertools.count(1)


def next_local_id() -> int:
    """A process-local connection id (SQLite has no server to number connections)."""
    return next(_local_ids)


def ssl_context(ssl: bool | str | _ssl.SSLContext | None) -> _ssl.SSLContext | None:
    """``config.ssl`` as an SSLContext (None = no TLS).

    "require" encrypts without verifying; "verify-ca" checks the chain but not the host
    name; "verify-full" and True check both (libpq's meanings; asyncpg's for True).
    """
    if ssl is None or ssl == "disable":
        return None
    if isinstance(ssl, _ssl.SSLContext):
        return ssl
    ctx = _ssl.create_default_context()
    if ssl == "require":
        ctx.check_hostname = False
        ctx.verify_mode = _ssl.CERT_NONE
    elif ssl == "verify-ca":
        ctx.check_hostname = False
    return ctx


def libpq_connect_timeout(seconds: float) -> int:
    """libpq's ``connect_timeout`` for a bound of ``seconds``: whole seconds, rounded up (a
    bound is never shortened), at least 2 (libpq reads 1 as 2). Every libpq-based path
    (psycopg, aiopg; the engine, psycopg_pool, SQLAlchemy, Tortoise) sends this value."""
    return max(2, math.ceil(seconds))


def libpq_escape(value: str) -> str:
    """A name or value for libpq ``options`` (``-c name=value``), which splits on spaces:
    backslashes and spaces escaped."""
    return value.replace("\\", "\\\\").replace(" ", "\\ ")


def libpq_words(options: str) -> list[str]:
    r"""libpq ``options`` split into the words the server reads, as libpq documents it:
    whitespace separates words unless escaped with a backslash; a backslash takes the next
    character literally (``\\`` is one backslash)."""
    words: list[str] = []
    word: list[str] = []
    in_word = escaped = False
    for ch in options:
        if escaped:
            word.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = in_word = True
        elif ch.isspace():
            if in_word:
                words.append("".join(word))
                word, in_word = [], False
        else:
            word.append(ch)
            in_word = True
    if in_word:
        words.append("".join(word))
    return words


def libpq_option_settings(options: str) -> dict[str, str]:
    """The settings libpq ``options`` give the server: ``-c name=value``, ``-cname=value``
    and ``--name=value`` (a ``-`` in a name is ``_``, as the server reads it), by lower-case
    name (setting names are case-insensitive); a later one wins, as on the server. Other
    switches are not settings and are left out."""
    out: dict[str, str] = {}
    words = libpq_words(options)
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if word == "-c" and i < len(words):
            arg = words[i]
            i += 1
        elif len(word) > 2 and word[:2] in ("-c", "--"):
            arg = word[2:]
        else:
            continue
        name, sep, value = arg.partition("=")
        if sep and name:
            out[name.replace("-", "_").lower()] = value
    return out


def libpq_settings_flags(settings: Mapping[str, str]) -> str:
    """``settings`` as libpq ``options`` (``-c name=value`` each, escaped; may be empty)."""
    return " ".join(f"-c {libpq_escape(k)}={libpq_escape(v)}" for k, v in settings.items())


def libpq_joined_options(*parts: str | None) -> str:
    """libpq ``options`` strings joined in order: for a setting given twice, the later
    ``-c`` wins on the server."""
    return " ".join(p for p in parts if p)


def libpq_user_options(config: PoolConfig) -> tuple[str, str] | None:
    """``(where, options)``: the user's own libpq ``options`` for ``config`` — a
    ``driver_options["options"]``, which replaces the URL's ``?options=`` as a connect
    keyword replaces a conninfo key stock (libpq, psycopg, psycopg2), else the URL's;
    None when neither is given (None as a value counts as not given, as stock)."""
    given = config.driver_options.get("options")
    if given is not None:
        return "driver_options options", str(given)
    url = config.database_url.query.get("options")
    if url is not None:
        return "URL ?options=", str(url)
    return None


def pg_application_name(config: PoolConfig) -> str:
    """The ``application_name`` a PostgreSQL connection of ``config`` reports.

    The user's value wherever they set it wins — ``driver_options`` (``application_name``,
    asyncpg's ``server_settings``, a ``-c application_name=`` in libpq ``options``), then
    ``session``, then the URL query (``?application_name=``, then a ``-c
    application_name=`` in ``?options=``); the pool name is only the default. Every
    PostgreSQL driver and ORM path sends this one value (libpq stacks as the
    ``application_name`` key, which the server applies after ``options``).
    """
    options = config.driver_options
    if "application_name" in options:
        return str(options["application_name"])
    server = options.get("server_settings")
    if isinstance(server, Mapping) and "application_name" in server:
        return str(server["application_name"])
    user = libpq_user_options(config)
    from_options = libpq_option_settings(user[1]).get("application_name") if user else None
    if from_options is not None and user is not None and user[0].startswith("driver_options"):
        return from_options
    if "application_name" in config.session:
        return str(config.session["application_name"])
    query = config.database_url.query
    if "application_name" in query:
        return str(query["application_name"])
    if from_options is not None:
        return from_options
    return config.name


def pg_statement_timeout(seconds: float) -> str:
    """PostgreSQL's ``statement_timeout`` setting for ``seconds``: milliseconds, at least 1
    (0 would turn the timeout off)."""
    return str(max(1, round(seconds * 1000)))


def pg_server_settings(config: PoolConfig) -> dict[str, str]:
    """PostgreSQL settings sent at connect (startup parameters / ``-c`` options).

    Sent at startup they become the session's defaults, so ``RESET ALL`` / ``DISCARD ALL``
    (the full reset) restores them instead of dropping them.
    """
    settings = {str(k): str(v) for k, v in config.session.items()}
    settings["application_name"] = pg_application_name(config)
    if config.statement_timeout is not None:
        settings["statement_timeout"] = pg_statement_timeout(config.statement_timeout)
    if config.isolation_level is not None:
        settings["default_transaction_isolation"] = PG_ISOLATION[config.isolation_level]
    return settings


def pg_merged_settings(ours: Mapping[str, Any], *user: Mapping[str, Any] | None) -> dict[str, Any]:
    """poolbridge's server settings with the user's ``server_settings`` dicts merged over
    them key by key (later dicts win): the user's settings apply, poolbridge's other
    settings stay. Values are kept as the user gave them (the driver checks them, as stock).
    A conflict with a PoolConfig knob is refused before this runs
    (:func:`pg_settings_conflicts`)."""
    merged: dict[str, Any] = dict(ours)
    for settings in user:
        if settings:
            merged.update(settings)
    return merged


def pg_libpq_settings(config: PoolConfig) -> dict[str, str]:
    """poolbridge's settings for libpq ``options`` (``-c``): :func:`pg_server_settings`
    without ``application_name``, which libpq sends as a key of its own."""
    settings = pg_server_settings(config)
    del settings["application_name"]
    return settings


def libpq_options_for(config: PoolConfig, ours: Mapping[str, str] | None = None) -> str:
    """The libpq ``options`` a connection of ``config`` sends (may be empty): the URL's
    ``?options=`` (unless ``driver_options["options"]`` replaces it, as stock), then
    poolbridge's settings (``ours``, default :func:`pg_libpq_settings`), then
    ``driver_options["options"]``. The server applies a later ``-c`` over an earlier one:
    the user's driver options win over ``session``, ``session`` over the URL's, as on
    asyncpg; a ``statement_timeout`` / ``default_transaction_isolation`` the user sets that
    disagrees with the knob is refused beforehand (:func:`libpq_options_conflicts`)."""
    flags = libpq_settings_flags(pg_libpq_settings(config) if ours is None else ours)
    user = libpq_user_options(config)
    if user is None:
        return flags
    if user[0].startswith("driver_options"):
        return libpq_joined_options(flags, user[1])
    return libpq_joined_options(user[1], flags)


def libpq_options_conflicts(
    config: PoolConfig, options: str | None = None, where: str | None = None
) -> dict[str, str]:
    """:func:`pg_settings_conflicts` for libpq ``options``: the user's own
    (:func:`libpq_user_options`) unless ``options`` (named ``where``) is given."""
    if options is None:
        user = libpq_user_options(config)
        if user is None:
            return {}
        where, options = user
    return pg_settings_conflicts(
        config, libpq_option_settings(options), where or "options", flag=True
    )


#: PostgreSQL's time units (statement_timeout): unit -> milliseconds; no unit = ms
_PG_TIME_UNITS = {"us": 0.001, "ms": 1.0, "s": 1e3, "min": 6e4, "h": 3.6e6, "d": 8.64e7}
_PG_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$")


def _pg_milliseconds(value: Any) -> float | None:
    """A PostgreSQL duration setting (``1500``, ``"1.5s"``, ``"2 min"``) in milliseconds;
    None when it is not one."""
    match = _PG_DURATION.match(str(value))
    if match is None or match.group(2) not in ("", *_PG_TIME_UNITS):
        return None
    return float(match.group(1)) * _PG_TIME_UNITS.get(match.group(2), 1.0)


def pg_settings_conflicts(
    config: PoolConfig, settings: Mapping[str, Any] | None, where: str, *, flag: bool = False
) -> dict[str, str]:
    """Knob -> why, for each PoolConfig knob that a user's ``server_settings`` dict (named
    ``where`` in the message) also sets, to a different value.

    ``statement_timeout`` and ``isolation_level`` are poolbridge's knobs: the client-side
    statement backstop follows ``statement_timeout``, so a second, different value in the
    driver's settings cannot be honoured together with it. Both are the user's explicit
    choices and neither silently wins: the caller refuses the config (UnsupportedOptionError
    naming both values). The same value given in both places is accepted, however it is
    written (``7s``, ``7000``, ``7000ms``; ``SERIALIZABLE``). ``flag``: the settings came
    from libpq ``options`` and are shown as ``-c name=value``.
    """
    if not settings:
        return {}

    def shown(name: str, value: Any) -> str:
        return f"{where} -c {name}={value}" if flag else f"{where}[{name!r}]={value!r}"

    out: dict[str, str] = {}
    if config.statement_timeout is not None and "statement_timeout" in settings:
        ours = pg_statement_timeout(config.statement_timeout)
        theirs = settings["statement_timeout"]
        got = _pg_milliseconds(theirs)
        if got is None or round(got) != int(ours):
            out["statement_timeout"] = (
                f"statement_timeout={config.statement_timeout:g} (s, {ours} ms) and "
                f"{shown('statement_timeout', theirs)} disagree: set it in one place"
            )
    if config.isolation_level is not None and "default_transaction_isolation" in settings:
        ours = PG_ISOLATION[config.isolation_level]
        theirs = settings["default_transaction_isolation"]
        if " ".join(str(theirs).lower().split()) != ours:
            out["isolation_level"] = (
                f"isolation_level={config.isolation_level!r} ({ours!r}) and "
                f"{shown('default_transaction_isolation', theirs)} disagree: set it in one place"
            )
    return out


#: SQLSTATE classes a connection attempt cannot outgrow by retrying: 28 authorization
#: (wrong password, unknown role, no pg_hba entry), 3D unknown database, 42 a bad startup
#: option (unrecognized configuration parameter), 22 a bad option value
_PG_PERMANENT_CLASSES = ("28", "3D", "42", "22")

#: what libpq reports for a server that exists but cannot take this session *yet*
#: (starting up, shutting down, in recovery, out of connection slots): worth retrying
_LIBPQ_TRANSIENT = (
    "starting up",
    "shutting down",
    "in recovery",
    "not yet accepting connections",
    "too many clients",
    "too many connections",
    "connection slots are reserved",
    "terminating connection",
)

#: client-side libpq errors about the connection parameters themselves
_LIBPQ_PERMANENT = (
    "password authentication failed",
    "no password supplied",
    "no pg_hba.conf entry",
    "invalid connection option",
    "invalid dsn",
    "invalid sslmode",
    "invalid integer value",
    "does not exist",
)


def pg_permanent_sqlstate(sqlstate: object) -> bool:
    """True when a PostgreSQL SQLSTATE at connect means retrying cannot help."""
    return isinstance(sqlstate, str) and sqlstate[:2] in _PG_PERMANENT_CLASSES


def libpq_permanent_connect_error(exc: BaseException) -> bool:
    """True when a libpq-based driver's error at connect (psycopg, psycopg2/aiopg) means
    retrying cannot help.

    libpq reports a server's refusal of the session as text, without a SQLSTATE: a
    ``FATAL:`` from the server is permanent unless it says the server cannot take sessions
    yet (:data:`_LIBPQ_TRANSIENT`); a ``ProgrammingError`` is a bad connection parameter.
    """
    if pg_permanent_sqlstate(getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)):
        return True
    if type(exc).__name__ == "ProgrammingError":
        return True
    text = str(exc)
    if any(t in text for t in _LIBPQ_TRANSIENT):
        return False
    return "FATAL:" in text or any(t in text for t in _LIBPQ_PERMANENT)


#: what libpq reports when the server refused a connection slot (SQLSTATE 53300; psycopg2
#: gives no pgcode for connect-time errors, so the message tells): the role's CONNECTION
#: LIMIT, max_connections, or only the reserved slots left
_LIBPQ_SLOT_REFUSED = (
    "too many connections for role",
    "too many clients already",
    "remaining connection slots are reserved",
)


def libpq_slot_refused(exc: BaseException) -> bool:
    """True when a libpq-based driver's error at connect (psycopg, psycopg2/aiopg) is the
    server refusing a connection slot (SQLSTATE 53300)."""
    if (getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)) == "53300":
        return True
    text = str(exc)
    return any(m in text for m in _LIBPQ_SLOT_REFUSED)


#: first pause between two connects refused a slot, and the longest one
_SLOT_FIRST_PAUSE, _SLOT_MAX_PAUSE = 0.05, 0.4


async def wait_for_slot(
    connect: Callable[[float], Awaitable[T]],
    timeout: float,
    refused: Callable[[BaseException], bool],
) -> T:
    """``connect(seconds_left)`` again, with a short backoff, while the server refuses a
    connection slot (``refused(exc)``), for at most ``timeout`` seconds; any other error,
    or a refusal with no time left for another try, is raised as it is.

    A server counts a connection the pool has already given up (a cancelled statement still
    running on it) until that statement ends: the slot frees within moments, and a caller
    who may still wait must not fail on it. The error comes before the time is up, so a pool
    turns it into its own PoolTimeout at the caller's deadline and, at open, into a
    ConnectError after its retry budget.
    """
    deadline = monotonic() + timeout
    pause = _SLOT_FIRST_PAUSE
    while True:
        try:
            return await connect(max(0.001, deadline - monotonic()))
        except Exception as exc:
            if not refused(exc) or monotonic() + pause >= deadline:
                raise
        await asyncio.sleep(pause)
        pause = min(pause * 2, _SLOT_MAX_PAUSE)


def client_backstop(config: PoolConfig) -> float | None:
    """A client-side bound for one statement when ``statement_timeout`` is set.

    The server enforces ``statement_timeout``; this backstop (20 % later, at least 0.5 s)
    bounds a caller whose statement never reaches the server (a stalled network).
    """
    return backstop(config.statement_timeout)


def mysql_literal(value: object) -> str:
    """A MySQL value for ``SET SESSION``: numbers and ON/OFF bare, anything else quoted."""
    text = str(value)
    if _NUMBER.match(text) or text.upper() in ("ON", "OFF", "DEFAULT", "TRUE", "FALSE"):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def mysql_session_sql(config: PoolConfig) -> list[str]:
    """Statements run on every new MySQL/MariaDB connection (and after a full reset)."""
    out: list[str] = []
    for key, value in config.session.items():
        if not _NAME.match(str(key)):
            raise ValueError(f"session setting name {key!r} is not a valid identifier")
        out.append(f"SET SESSION {key} = {mysql_literal(value)}")
    if config.isolation_level is not None:
        level = MYSQL_ISOLATION[config.isolation_level]
        out.append(f"SET SESSION TRANSACTION ISOLATION LEVEL {level}")
    if config.statement_timeout is not None:
        # MariaDB: seconds (float); MySQL would be max_execution_time in ms
        out.append(f"SET SESSION max_statement_time = {config.statement_timeout:g}")
    return out


class BaseShim:
    """Shared defaults of the driver shims (see :class:`poolbridge.engine.checkout.DriverShim`).

    ``connect_kwargs(config)`` is pure data (no I/O, no import of the driver): the adapters
    show it as the native side of their translation table.
    """

    name: str = "base"
    backend: str = "postgresql"
    #: driver exception classes meaning "this connection is broken" (resolved lazily)
    _conn_errors: tuple[type[BaseException], ...] | None = None
    #: the config of a pool whose connects go through drivers/hosts.py (several hosts or
    #: a target_session_attrs), kept for its re-check interval and demotion rule
    routed_config: PoolConfig | None = None
    #: ``(is_closed, reusable)`` as plain functions of the connection (drivers/state.py)
    #: when the shim's two methods are exactly those functions for a pool that does not
    #: route between hosts; None: the engine calls the methods
    plain_checks: tuple[Callable[[Any], bool], Callable[[Any], bool]] | None = None

    def state_checks(
        self, config: PoolConfig
    ) -> tuple[Callable[[Any], bool], Callable[[Any], bool]] | None:
        """What the engine calls on every checkout and checkin of a pool of ``config``
        instead of :meth:`is_closed`/``reusable()``, with the same answers: the plain
        functions (one call less, and C in the compiled build), unless the pool routes
        between hosts (then ``is_closed()`` also retires a fallback connection), or a
        subclass (or the instance) replaced either method: then the methods are called."""
        if self.plain_checks is None or needs_routing(config):
            return None
        mro = type(self).__mro__
        owner = next(k for k in mro if "plain_checks" in vars(k))
        for name in ("is_closed", "reusable"):
            if name in vars(self) or next(k for k in mro if name in vars(k)) is not owner:
                return None
        return self.plain_checks

    def connect_kwargs(self, config: PoolConfig) -> dict[str, Any]:
        raise NotImplementedError

    def connection_error_types(self) -> tuple[type[BaseException], ...]:
        """Driver exception classes that mean the connection is gone (imported lazily)."""
        return ()

    #: a block cancelled mid-statement leaves this driver's protocol state unknown
    #: (unread result packets...): the engine then discards the connection
    cancel_breaks_connection: bool = False

    def is_connection_error(self, exc: BaseException) -> bool:
        if isinstance(exc, asyncio.CancelledError):
            return self.cancel_breaks_connection
        errors = self._conn_errors
        if errors is None:
            errors = self._conn_errors = (OSError, *self.connection_error_types())
        return isinstance(exc, errors)

    def is_retryable_connect_error(self, exc: BaseException) -> bool:
        """False when ``exc``, raised by :meth:`connect`, cannot be cured by retrying (bad
        credentials, unknown database, a bad option): the engine then stops at once."""
        from poolbridge.drivers.connect_errors import is_permanent_connect_error

        return not is_permanent_connect_error(exc)

    def is_slot_refused(self, exc: BaseException) -> bool:
        """True when ``exc``, raised by :meth:`connect`, is the server refusing a connection
        slot: transient, the connect already waited for one (:func:`wait_for_slot`) and the
        engine lets its waiters wait on until their own deadline (PoolTimeout)."""
        from poolbridge.drivers.connect_errors import is_slot_refused

        return is_slot_refused(exc)

    async def full_reset(self, conn: Any) -> bool:
        """No full reset by default: the engine replaces the connection instead."""
        return False

    def local_server_id(self, conn: Any) -> int | str:
        """The server-side id the driver already knows (backend pid, thread id), without a
        round trip; what every adapter on this driver records."""
        raise NotImplementedError

    async def server_id(self, conn: Any) -> int | str:
        """:meth:`local_server_id` (the engine's DriverShim protocol awaits it)."""
        return self.local_server_id(conn)

    def sever(self, conn: Any) -> None:
        """Cut ``conn`` now, without a round trip, so an operation stuck on it (a stalled
        network: no byte flows, no error comes) fails at once with the driver's connection
        error. Sync; may raise (callers that must not fail suppress it)."""
        self.terminate(conn)

    def terminate(self, conn: Any) -> None:
        raise NotImplementedError

    async def scalar(self, conn: Any, sql: str) -> Any:
        """First column of the first row of ``sql`` (see :func:`raw_scalar`)."""
        return await raw_scalar(conn, sql)

    def unsupported(self, config: PoolConfig) -> dict[str, str]:
        """Knobs set in ``config`` that this driver cannot honour: field -> why."""
        return {}

    @staticmethod
    def url_parts(config: PoolConfig) -> dict[str, Any]:
        """host/port/user/database from the URL (None values dropped)."""
        u = config.database_url
        parts = {"host": u.host, "port": u.port, "user": u.username, "database": u.database}
        return {k: v for k, v in parts.items() if v is not None}


_DRIVER_PACKAGES = frozenset({"asyncpg", "psycopg", "aiopg", "aiomysql", "asyncmy", "aiosqlite"})


def _driver_package(conn: Any) -> str:
    """The driver package whose connection class ``conn`` is or subclasses (a pool, an ORM
    or a user may hand out a subclass of the driver's class, defined in their module)."""
    for cls in type(conn).__mro__:
        kind = cls.__module__.split(".", 1)[0]
        if kind in _DRIVER_PACKAGES:
            return kind
    return type(conn).__module__.split(".", 1)[0]


async def raw_scalar(conn: Any, sql: str) -> Any:
    """First column of the first row of ``sql`` on a bare driver connection (asyncpg,
    psycopg, aiopg, aiomysql, asyncmy), leaving no transaction open behind it.

    For work a pool does on a connection before anyone uses it (the budget check at open):
    a read left in an open transaction would pin a snapshot for the first user.
    """
    kind = _driver_package(conn)
    if kind == "asyncpg":
        return await conn.fetchval(sql)
    if kind == "psycopg":
        from psycopg.rows import tuple_row  # the connection's own row factory may be dicts

        async with conn.cursor(row_factory=tuple_row) as cur:
            await cur.execute(sql)
            row = await cur.fetchone()
        if not conn.autocommit and conn.pgconn.transaction_status != 0:  # 0: IDLE
            await conn.rollback()
        return None if row is None else row[0]
    async with conn.cursor() as cur:  # aiopg (always autocommit), aiomysql, asyncmy
        await cur.execute(sql)
        row = await cur.fetchone()
    if kind in ("aiomysql", "asyncmy") and not conn.get_autocommit():
        await conn.rollback()
    if isinstance(row, dict):  # a dict cursor class set through driver_options
        return next(iter(row.values()), None)
    return None if row is None else row[0]


_DEFAULT_CONNECT_TIMEOUT: float = PoolConfig.__dataclass_fields__["connect_timeout"].default  # type: ignore[assignment]

#: knobs no SQLite stack can honour once set, with the reason (documentation tables too)
SQLITE_REFUSED: Mapping[str, str] = {
    "connect_timeout": "SQLite opens a local file: there is no connect to time out",
    "password": SQLITE_NO_PASSWORD,
    "statement_cache": "SQLite has no server-side prepared statements (and no pgbouncer) to avoid",
}


def sqlite_cannot_honour(config: PoolConfig) -> dict[str, str]:
    """The :data:`SQLITE_REFUSED` knobs that ``config`` sets, each with the reason.

    Shared by the aiosqlite shim (the raw adapter, Tortoise and peewee-async on the engine)
    and the SQLAlchemy adapter, so that none of them drops one silently: only knobs the
    user set are listed (a default would warn on every open for nothing).
    """
    set_here = {
        "connect_timeout": config.connect_timeout != _DEFAULT_CONNECT_TIMEOUT,
        "password": config.password is not None,
        "statement_cache": not config.statement_cache,
    }
    refused = {knob: why for knob, why in SQLITE_REFUSED.items() if set_here[knob]}
    from poolbridge.drivers.hosts import sqlite_refused_hosts

    return {**refused, **sqlite_refused_hosts(config)}
