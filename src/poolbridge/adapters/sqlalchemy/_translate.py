"""PoolConfig -> SQLAlchemy asyncio arguments, as pure data (no SQLAlchemy import).

Split from :mod:`poolbridge.adapters.sqlalchemy` so the table can be read (and
unit-tested, and printed by ``poolbridge config show``) without SQLAlchemy installed.

Two modes share one table:

- ``bridge`` (``create_async_engine(config)`` / ``open_pool``): poolbridge's pool class
  and pool events live inside the engine, so every knob in ``emulated`` is honoured.
- ``plain`` (:func:`~poolbridge.adapters.sqlalchemy.native_arguments`): only arguments SQLAlchemy
  understands on its own; every knob that needs poolbridge's machinery becomes unsupported
  there (an error when set explicitly, one warning when left at its default).
"""

from __future__ import annotations

import ssl as _ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

from poolbridge.adapters._ha import ha_rows
from poolbridge.adapters.base import Translation
from poolbridge.config.model import PoolConfig
from poolbridge.drivers.base import (
    client_backstop,
    libpq_connect_timeout,
    libpq_joined_options,
    libpq_options_conflicts,
    libpq_options_for,
    libpq_settings_flags,
    mysql_literal,
    pg_application_name,
    pg_merged_settings,
    pg_settings_conflicts,
    pg_statement_timeout,
    sqlite_cannot_honour,
    ssl_context,
)
from poolbridge.drivers.psycopg.conninfo import libpq_host_keys
from poolbridge.pool.lifetime import LIFETIME_JITTER

__all__ = [
    "DRIVERS",
    "ISOLATION",
    "LIFETIME_JITTER",
    "connect_args_conflicts",
    "is_memory_sqlite",
    "merge_connect_args",
    "mysql_init_command",
    "pick_driver",
    "plain_translation",
    "sqlalchemy_url",
    "translate",
]

DRIVERS: dict[str, tuple[str, ...]] = {
    "postgresql": ("asyncpg", "psycopg"),
    "mysql": ("aiomysql", "asyncmy"),
    "sqlite": ("aiosqlite",),
}

ISOLATION: dict[str, str] = {
    "read_committed": "READ COMMITTED",
    "repeatable_read": "REPEATABLE READ",
    "serializable": "SERIALIZABLE",
}

_PLAIN_WHY = "needs poolbridge's pool class and events: use `create_async_engine(config)`"


def is_memory_sqlite(config: PoolConfig) -> bool:
    """True for an in-memory SQLite database (one connection is the whole database)."""
    db = config.database_url.database or ":memory:"
    return config.backend == "sqlite" and (db == ":memory:" or "mode=memory" in config.url)


def pick_driver(config: PoolConfig) -> str:
    """The driver for ``config``: ``driver=``, then the URL's ``+driver``, then the default."""
    wanted = config.driver or config.database_url.driver
    return wanted or DRIVERS.get(config.backend, ("?",))[0]


def sqlalchemy_url(config: PoolConfig, driver: str, *, with_password: bool = False) -> str:
    """The SQLAlchemy URL string (``backend+driver://...``). Password only when asked."""
    u = config.database_url
    kept = {k: v for k, v in u.query.items() if not _in_connect_args(config, driver, k)}
    query = ("?" + urlencode(kept)) if kept else ""
    if config.backend == "sqlite":
        return f"sqlite+{driver}:///{u.database or ':memory:'}{query}"
    auth = quote(u.username or "", safe="")
    if with_password and u.password:
        auth += ":" + quote(u.password, safe="")
    host = u.host or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{auth}@{host}" if auth else host
    if u.port:
        netloc += f":{u.port}"
    # mariadb:// keeps SQLAlchemy's MariaDB dialect (dialect.name "mariadb", MariaDB-only
    # SQL and its check that the server is a MariaDB), as stock
    dialect = "mariadb" if u.scheme.split("+", 1)[0] == "mariadb" else config.backend
    return f"{dialect}+{driver}://{netloc}/{quote(u.database or '', safe='')}{query}"


#: URL query keys carried by connect_args instead of the URL (the dialect would hand them
#: to the driver's connect() as they are: asyncpg has no ``application_name`` argument;
#: psycopg's ``options`` are merged with poolbridge's, which would replace them)
_PG_QUERY_TO_SETTINGS = ("application_name",)
_PSYCOPG_QUERY_TO_CONNECT_ARGS = ("options",)


def _in_connect_args(config: PoolConfig, driver: str, key: str) -> bool:
    if config.backend != "postgresql":
        return False
    return key in _PG_QUERY_TO_SETTINGS or (
        driver == "psycopg" and key in _PSYCOPG_QUERY_TO_CONNECT_ARGS
    )


def mysql_init_command(config: PoolConfig) -> str | None:
    """``SET SESSION ...`` for session settings and statement_timeout (MariaDB seconds)."""
    parts = [f"SESSION {k}={mysql_literal(v)}" for k, v in config.session.items()]
    if config.statement_timeout is not None:
        parts.append(f"SESSION max_statement_time={config.statement_timeout:g}")
    return ("SET " + ", ".join(parts)) if parts else None


def _connect_args(
    config: PoolConfig, driver: str, unsupported: dict[str, str], emulated: dict[str, str]
) -> dict[str, Any]:
    """Per-driver connect_args for every connection-level knob."""
    ca: dict[str, Any] = {}
    pg_settings: dict[str, str] = {}
    backstop = client_backstop(config)  # drivers/base.py: one rule for every stack
    if config.backend == "postgresql":
        # one rule on every PostgreSQL stack (drivers/base.py): the user's application_name
        # (driver_options, then session, then the URL query), else the pool name;
        # statement_timeout wins over session["statement_timeout"]
        pg_settings.update({k: str(v) for k, v in config.session.items()})
        pg_settings["application_name"] = pg_application_name(config)
        if config.statement_timeout is not None:
            pg_settings["statement_timeout"] = pg_statement_timeout(config.statement_timeout)
    if driver == "asyncpg":
        ca["timeout"] = config.connect_timeout
        ca["server_settings"] = pg_settings
        user_settings = config.driver_options.get("server_settings")
        if isinstance(user_settings, Mapping):
            # merged key by key below (merge_connect_args): the user's keys win, ours stay;
            # a disagreement with a PoolConfig knob cannot be honoured: refused
            unsupported.update(
                pg_settings_conflicts(config, user_settings, "driver_options server_settings")
            )
        if backstop is not None:
            # client-side backstop when no answer can arrive (stalled network)
            ca["command_timeout"] = backstop
        if config.ssl is not None:
            ca["ssl"] = config.ssl
        if not config.statement_cache:
            ca["prepared_statement_cache_size"] = 0
            ca["statement_cache_size"] = 0
            # prepared_statement_name_func is a callable, not data: engine_kwargs/_build add it
            emulated["statement_cache"] = (
                "connect_args prepared_statement_cache_size=0, statement_cache_size=0 and "
                "prepared_statement_name_func -> unnamed statements (pgbouncer transaction "
                "mode: asyncpg re-parses them with every execute, none is left behind)"
            )
    elif driver == "psycopg":
        ca["connect_timeout"] = libpq_connect_timeout(config.connect_timeout)
        ca["application_name"] = pg_settings.pop("application_name")
        # the user's libpq options (the URL's, or driver_options' replacing them as stock)
        # merged with ours (drivers/base.py); a disagreeing knob is refused
        options = libpq_options_for(config, _psycopg_settings(config))
        if options:
            ca["options"] = options
        unsupported.update(libpq_options_conflicts(config))
        if isinstance(config.ssl, _ssl.SSLContext):
            unsupported["ssl"] = "libpq (psycopg) cannot use an ssl.SSLContext; give a mode"
        elif config.ssl is not None:
            ca["sslmode"] = config.ssl
        if not config.statement_cache:
            ca["prepare_threshold"] = None
        ca.update(libpq_host_keys(config))  # several hosts, a target: libpq routes
    elif driver in ("aiomysql", "asyncmy"):
        ca["connect_timeout"] = config.connect_timeout
        if driver == "asyncmy" and backstop is not None:
            ca["read_timeout"] = backstop  # the same client-side backstop
        init = mysql_init_command(config)
        if init:
            ca["init_command"] = init
        if config.ssl is not None:
            ctx = ssl_context(config.ssl)
            if ctx is not None:
                ca["ssl"] = ctx
    if config.statement_timeout is not None and driver in ("psycopg", "aiomysql"):
        emulated["statement_timeout"] = (
            "server-side setting, plus a client-side watchdog (cursor events) that cuts a "
            "connection whose statement got no answer 20 % past the limit (at least 0.5 s)"
        )
    if driver == "aiosqlite":
        unsupported.update(sqlite_cannot_honour(config))
        if config.statement_timeout is not None:
            unsupported["statement_timeout"] = "SQLite has no statement timeout"
        if config.ssl is not None and config.ssl != "disable":
            unsupported["ssl"] = "SQLite is a local file: there is no transport to encrypt"
        if config.session:
            unsupported["session"] = (
                "SQLite has no session settings; PRAGMAs are driver-level (use a connect event)"
            )
    return merge_connect_args(config, driver, ca, config.driver_options)


def _psycopg_settings(config: PoolConfig) -> dict[str, str]:
    """poolbridge's ``-c`` settings on SQLAlchemy + psycopg: isolation_level is SQLAlchemy's
    own ``isolation_level`` argument there, not a startup setting."""
    settings = {k: str(v) for k, v in config.session.items() if k != "application_name"}
    if config.statement_timeout is not None:
        settings["statement_timeout"] = pg_statement_timeout(config.statement_timeout)
    return settings


def merge_connect_args(
    config: PoolConfig, driver: str, ours: Mapping[str, Any], user: Mapping[str, Any]
) -> dict[str, Any]:
    """``connect_args`` with the user's (``driver_options``, or ``create_async_engine``'s
    own ``connect_args``) merged over poolbridge's key by key, as stock SQLAlchemy merges
    them over the URL's: the user's keys win. asyncpg's ``server_settings`` dicts are merged
    key by key too, and psycopg's libpq ``options`` are joined after poolbridge's settings
    (the user's ``options`` replace the URL's, as stock), so poolbridge's settings
    (application_name, statement_timeout, session) stay beside the user's."""
    merged = {**ours, **user}
    theirs = user.get("server_settings")
    if driver == "asyncpg" and isinstance(theirs, Mapping):
        base = ours.get("server_settings")
        merged["server_settings"] = pg_merged_settings(
            base if isinstance(base, Mapping) else {}, theirs
        )
    if driver == "asyncpg" and "application_name" in user:
        # asyncpg.connect has no such argument: the startup setting it names, ahead of
        # server_settings' own (the ladder of pg_application_name)
        settings = dict(merged.get("server_settings") or {})
        settings["application_name"] = str(merged.pop("application_name"))
        merged["server_settings"] = settings
    options = user.get("options")
    if driver == "psycopg" and options is not None:
        flags = libpq_settings_flags(_psycopg_settings(config))
        merged["options"] = libpq_joined_options(flags, str(options))
    return merged


def connect_args_conflicts(
    config: PoolConfig, driver: str, user: Mapping[str, Any]
) -> dict[str, str]:
    """Knob -> why, for create_async_engine's own ``connect_args``: a ``server_settings``
    entry (asyncpg) or a libpq ``options`` setting (psycopg) there that disagrees with
    ``statement_timeout`` / ``isolation_level``
    (:func:`~poolbridge.drivers.base.pg_settings_conflicts`)."""
    theirs = user.get("server_settings")
    if driver == "asyncpg" and isinstance(theirs, Mapping):
        return pg_settings_conflicts(config, theirs, "connect_args server_settings")
    options = user.get("options")
    if driver == "psycopg" and options is not None:
        return libpq_options_conflicts(config, str(options), "connect_args options")
    return {}


def translate(config: PoolConfig) -> Translation:
    """The bridge-mode table: what is passed, what poolbridge provides, what cannot hold."""
    driver = pick_driver(config)
    native: dict[str, Any] = {"url": sqlalchemy_url(config, driver)}
    emulated: dict[str, str] = {}
    unsupported: dict[str, str] = {}
    memory = is_memory_sqlite(config)

    native["pool_size"] = config.max_size
    native["max_overflow"] = 0  # a hard cap: no overflow above max_size
    native["pool_timeout"] = config.acquire_timeout
    native["pool_reset_on_return"] = "rollback"
    if config.max_lifetime is not None:
        native["pool_recycle"] = config.max_lifetime
    if memory:
        if config.max_size != 1:
            unsupported["max_size"] = (
                "an in-memory SQLite database lives in its one connection (StaticPool): "
                "max_size must be 1"
            )
        if config.max_lifetime is not None:
            unsupported["max_lifetime"] = (
                "replacing the only connection of an in-memory SQLite database drops the data"
            )
            native.pop("pool_recycle", None)
        if config.reset == "full":
            unsupported["reset"] = (
                "a full reset replaces the connection, which drops an in-memory database"
            )
    if config.isolation_level is not None:
        if config.backend == "sqlite" and config.isolation_level != "serializable":
            unsupported["isolation_level"] = "SQLite offers only serializable isolation"
        else:
            native["isolation_level"] = ISOLATION[config.isolation_level]
    native["connect_args"] = _connect_args(config, driver, unsupported, emulated)

    if config.min_size > 0:
        emulated["min_size"] = (
            "pool class opens min_size connections at first use (or warm_up()) and refills "
            "after kills/expiry (SQLAlchemy starts empty)"
        )
    if config.max_idle is not None and config.max_size > config.min_size and not memory:
        emulated["max_idle"] = "pool class closes connections above min_size idle longer"
    if config.max_waiting > 0:
        emulated["max_waiting"] = "pool class refuses the caller beyond it (TooManyRequests)"
    if config.max_lifetime is not None and not memory:
        emulated["max_lifetime"] = (
            f"pool class replaces a connection at max_lifetime minus up to "
            f"{LIFETIME_JITTER:.0%} jitter (pool_recycle stays as a backstop)"
        )
    if config.pre_ping:
        emulated["pre_ping"] = (
            "pool class pings a reused connection at checkout, for at most connect_timeout "
            "and never past the caller's acquire deadline; a connection that fails or gives "
            "no answer is cut and replaced (SQLAlchemy's own pre-ping, switched off, would "
            "wait forever on a stalled network)"
            if config.backend != "sqlite"
            else "pool class pings a reused connection at checkout and replaces a dead one"
        )
    if config.leak_timeout is not None:
        emulated["leak_timeout"] = "BridgePool's checkout and checkin feed poolbridge's LeakTracker"
    if config.password is not None and not isinstance(config.password, str):
        emulated["password"] = "do_connect event calls the provider for every new connection"
    if config.reset == "full" and not memory:
        emulated["reset"] = (
            "reset event: DISCARD ALL (asyncpg: Connection.reset()) then on_connect replay"
            if config.backend == "postgresql"
            else "no full reset on this driver: the connection is replaced at checkin"
        )
    if config.backend != "sqlite":
        emulated["connect_timeout"] = (
            "do_connect event bounds the whole connect (TCP, TLS, handshake, auth); "
            "the driver's own timeout is passed too"
        )
    if config.retry.attempts > 1 and config.backend != "sqlite":
        emulated["retry"] = "pool class retries connection establishment with backoff"
    if driver != "aiosqlite":  # SQLite: refused with the other knobs (sqlite_cannot_honour)
        # psycopg: libpq routes (connect_args); the others: the do_connect event's connect
        # wrapper routes through drivers/hosts.py (_hosts.py)
        ha_emulated, _ = ha_rows(config, "libpq-expiry" if driver == "psycopg" else "wrapped")
        emulated.update(ha_emulated)
    emulated = {k: v for k, v in emulated.items() if k not in unsupported}
    return Translation(native=native, emulated=emulated, unsupported=unsupported)


def plain_translation(config: PoolConfig) -> Translation:
    """The ``engine_kwargs`` table: emulated knobs cannot be carried by plain arguments."""
    t = translate(config)
    unsupported = dict(t.unsupported)
    for knob in t.emulated:
        if knob in ("statement_cache", "statement_timeout"):
            # carried by connect_args (the name func is added by engine_kwargs); the server
            # enforces statement_timeout, only the client-side watchdog needs events
            continue
        if knob == "max_lifetime":
            continue  # pool_recycle honours it, without jitter
        if knob == "pre_ping":
            continue  # pool_pre_ping honours it (not bounded in time on a stalled network)
        if knob in ("hosts", "target_session_attrs") and pick_driver(config) == "psycopg":
            continue  # libpq's own keys in connect_args, as the psycopg adapter passes them
        if knob == "connect_timeout":
            if config.backend == "mysql":
                unsupported[knob] = (
                    "aiomysql/asyncmy bound only the TCP connect, not the handshake; "
                    "use `create_async_engine(config)`"
                )
            continue  # asyncpg timeout / libpq connect_timeout bound the whole connect
        unsupported.setdefault(knob, _PLAIN_WHY)
    native = dict(t.native)
    native["pool_pre_ping"] = bool(config.pre_ping)  # unset: SQLAlchemy's default (off)
    if is_memory_sqlite(config):
        native.pop("pool_size", None)
        native.pop("max_overflow", None)
        native.pop("pool_timeout", None)
    return Translation(native=native, emulated={}, unsupported=unsupported)
