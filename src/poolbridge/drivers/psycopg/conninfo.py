"""PoolConfig -> psycopg connect and psycopg_pool keyword arguments (pure data, no import
of psycopg): shared by the psycopg adapter, Tortoise's psycopg client and peewee-async's
Psycopg3Database (it lives with the drivers because it belongs to none of those adapters).

Session settings, ``statement_timeout`` and ``isolation_level`` travel in the startup
packet (libpq ``options=-c ...``): no extra round trip, and ``DISCARD ALL``
(``reset="full"``) restores them because startup values are the session defaults. A user's
own ``options`` (the URL's ``?options=``, or ``driver_options["options"]`` replacing it as
stock) are merged with them, never replaced (:func:`~poolbridge.drivers.base.libpq_options_for`).
``application_name`` is a conninfo key: the user's (driver_options, session, URL query),
else the pool name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from poolbridge.config.model import PoolConfig
from poolbridge.drivers.base import (
    libpq_connect_timeout,
    libpq_joined_options,
    libpq_options_for,
    pg_application_name,
)

__all__ = [
    "NEVER",
    "conninfo_kwargs",
    "libpq_host_keys",
    "libpq_options",
    "pool_options",
    "psycopg_pool_under_orm",
    "settle_after_hook",
]

#: psycopg_pool wants a number; "never" is a century
NEVER = 100 * 365 * 24 * 3600.0


def libpq_options(config: PoolConfig, existing: str | None = None) -> str:
    """The libpq ``options`` of a connection of ``config`` (may be empty): poolbridge's
    ``-c name=value`` settings merged with the user's own ``options``
    (:func:`~poolbridge.drivers.base.libpq_options_for`).

    ``existing`` (options someone else set, e.g. Tortoise's search_path) comes first.
    ``statement_timeout`` and ``isolation_level`` win over the same names in ``session``,
    as on the engine's drivers.
    """
    return libpq_joined_options(existing, libpq_options_for(config))


def conninfo_kwargs(config: PoolConfig, password: str | None) -> dict[str, Any]:
    """Keyword arguments for ``psycopg.AsyncConnection.connect`` (password included)."""
    url = config.database_url
    kw: dict[str, Any] = {}
    if url.host:
        kw["host"] = url.host
    if url.port:
        kw["port"] = url.port
    kw.update(libpq_host_keys(config))
    if url.database:
        kw["dbname"] = url.database
    if url.username:
        kw["user"] = url.username
    if password is not None:
        kw["password"] = password
    kw["connect_timeout"] = libpq_connect_timeout(config.connect_timeout)
    if isinstance(config.ssl, str):
        kw["sslmode"] = config.ssl
    elif config.ssl is True:  # libpq has no "true": PoolConfig's generic meaning
        kw["sslmode"] = "verify-full"
    if not config.statement_cache:
        kw["prepare_threshold"] = None
    kw.update(url.query)  # libpq keys as stock (sslmode, host=<socket dir>, options ...)
    kw["application_name"] = pg_application_name(config)
    kw.update(config.driver_options)
    # the user's options (URL, or driver_options replacing it) merged with ours
    options = libpq_options(config)
    if options:
        kw["options"] = options
    return kw


def libpq_host_keys(config: PoolConfig) -> dict[str, Any]:
    """libpq's own multi-host keys: ``host=h1,h2 port=p1,p2`` (an empty port is libpq's
    default), ``target_session_attrs`` and ``load_balance_hosts``; libpq applies
    ``connect_timeout`` to each host. Empty when the config uses none of them."""
    kw: dict[str, Any] = {}
    if config.hosts:
        hosts = config.host_list()
        kw["host"] = ",".join(h for h, _ in hosts)
        kw["port"] = ",".join("" if p is None else str(p) for _, p in hosts)
    if config.target_session_attrs != "any":
        kw["target_session_attrs"] = config.target_session_attrs
    if config.load_balance_hosts != "disable":
        kw["load_balance_hosts"] = config.load_balance_hosts
    return kw


def pool_options(config: PoolConfig) -> dict[str, Any]:
    """psycopg_pool ``AsyncConnectionPool`` sizing/timing keyword arguments."""
    return {
        "min_size": config.min_size,
        "max_size": config.max_size,
        "timeout": config.acquire_timeout,
        "max_waiting": config.max_waiting,
        "max_lifetime": NEVER if config.max_lifetime is None else config.max_lifetime,
        "max_idle": NEVER if config.max_idle is None else config.max_idle,
        "reconnect_timeout": max(config.acquire_timeout, config.connect_timeout),
    }


def psycopg_pool_under_orm(host: str, *, notes: Mapping[str, str]) -> dict[str, str]:
    """The knob table of a hooked psycopg_pool running UNDER an ORM (Tortoise's psycopg
    client, peewee-async's Psycopg3Database): ``host`` names where it sits, ``notes``
    (knob -> text, appended as is) add what that ORM does differently."""
    table = {
        "min_size": f"{host} (min_size)",
        "max_size": f"{host} (max_size)",
        "acquire_timeout": f"{host} (timeout), raised as poolbridge.PoolTimeout",
        "connect_timeout": "libpq connect_timeout (whole seconds rounded up, at least 2)",
        "max_lifetime": f"{host} (max_lifetime)",
        "max_idle": f"{host} (max_idle)",
        "pre_ping": f"{host} (check: check_connection bounded by connect_timeout and the "
        "acquire deadline)",
        "max_waiting": f"{host} (max_waiting), raised as poolbridge.TooManyRequests",
        "reset": f"{host}: rolls back dirty connections; full = DISCARD ALL + on_connect",
        "statement_timeout": "libpq options -c statement_timeout",
        "isolation_level": "libpq options -c default_transaction_isolation",
        "session": "libpq options -c name=value",
        "statement_cache": "prepare_threshold=None when False",
        "ssl": "libpq sslmode on every connection (a mode name: libpq takes no SSLContext)",
        "password": "a provider resolved per new connection",
        "driver_options": "passed to every psycopg connect untouched (the pool's kwargs)",
        "retry": f"{host}: reconnects with backoff up to reconnect_timeout=acquire_timeout",
        "leak_timeout": "poolbridge's leak tracker in the pool's getconn/putconn",
    }
    for knob, note in notes.items():
        table[knob] += note
    return table


async def settle_after_hook(conn: Any) -> None:
    """Keep what a hook did on a psycopg connection that is not in autocommit mode.

    The hook's first statement (``SET search_path``, ``SET application_name``...) opened a
    transaction; left open, the caller's rollback (or the pool's at checkin) would undo the
    setting with it. Commit it, as psycopg users do after a SET; roll back a transaction the
    hook left failed. Called where the connection was idle before the hook ran, so only the
    hook's own work is committed; no round trip when the hook sent nothing. Other drivers
    need nothing: asyncpg and aiopg run in autocommit, and MySQL session and user variables
    are not transactional.
    """
    pgconn = getattr(conn, "pgconn", None)  # psycopg 3 (and its subclasses) only
    if pgconn is None:
        return
    from psycopg.pq import TransactionStatus

    status = pgconn.transaction_status
    if status == TransactionStatus.INTRANS:
        await conn.commit()
    elif status == TransactionStatus.INERROR:
        await conn.rollback()
