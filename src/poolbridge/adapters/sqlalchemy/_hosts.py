"""Several hosts inside an engine made by ``create_async_engine``: ``hosts``,
``target_session_attrs``, ``load_balance_hosts`` and ``host_recheck_interval``.

The dialect opens each DBAPI connection by awaiting the driver's connect function, which
the engine's ``do_connect`` event hands over as ``async_creator_fn`` (the key SQLAlchemy's
own ``async_creator`` fills). poolbridge's connect wrapper (:mod:`._events`) already
bounds it; with several hosts or a target it also routes it, the way the engine-backed
drivers do (:mod:`poolbridge.drivers.hosts`):

- asyncpg, aiomysql, asyncmy: :func:`router` opens one host per attempt with the
  dialect's own arguments (``host``, ``port`` and the driver's connect timeout replaced),
  each bounded by ``connect_timeout``, checks the session server-side, remembers down
  hosts and shuffles with ``load_balance_hosts="random"`` (the driver shim's own
  :func:`~poolbridge.drivers.hosts.routed`). asyncpg's own multi-host connect shares one
  timeout across its hosts and has no load balancing: it is not used.
- psycopg: libpq routes by itself (``connect_args`` ``host=h1,h2``, ``port``,
  ``target_session_attrs``, ``load_balance_hosts``: the conninfo builder's
  :func:`~poolbridge.drivers.psycopg.conninfo.libpq_host_keys`), ``connect_timeout`` per
  host; the bound of the whole connect covers every attempt (:func:`connect_bound`), and
  the pool ``connect`` event records where libpq placed the connection
  (:func:`~poolbridge.drivers.hosts.place_libpq`).
- ``host_recheck_interval``: a connection on a fallback host expires at the instant
  :func:`~poolbridge.drivers.hosts.retire_at` names (the pool's own expiry, as for
  ``max_lifetime``: checked at checkout, checkin and by the maintenance), so its
  replacement tries the preferred hosts again.
- ``read-write``/``primary``: a "read-only" error (25006; 1290, 1792, 1836) is a
  disconnect for this pool (the ``handle_error`` event's ``is_disconnect``): SQLAlchemy
  invalidates that connection, and only that one.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.util import await_

from poolbridge.config.model import PoolConfig
from poolbridge.drivers.base import raw_scalar
from poolbridge.drivers.hosts import (
    MYSQL_ROLE_SQL,
    PG_ROLE_SQL,
    demoted,
    needs_routing,
    place_libpq,
    retire_at,
    routed,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine
    from sqlalchemy.pool import ConnectionPoolEntry

    from poolbridge.adapters.sqlalchemy._state import BridgeState

__all__ = ["Route", "connect_bound", "install", "router"]

#: ``route(creator, limit, args, kwargs)``: open one connection with the dialect's
#: ``creator`` and arguments, within ``limit`` seconds
Route = Callable[[Any, float, tuple[Any, ...], dict[str, Any]], Awaitable[Any]]

#: driver -> (shim class path, keyword of its connect timeout, role query)
_ROUTED: dict[str, tuple[str, str, str]] = {
    "asyncpg": ("poolbridge.drivers.asyncpg:AsyncpgShim", "timeout", PG_ROLE_SQL),
    "aiomysql": ("poolbridge.drivers.aiomysql:AiomysqlShim", "connect_timeout", MYSQL_ROLE_SQL),
    "asyncmy": ("poolbridge.drivers.asyncmy:AsyncmyShim", "connect_timeout", MYSQL_ROLE_SQL),
}


def libpq_seconds(config: PoolConfig) -> int:
    """libpq's ``connect_timeout``: whole seconds, anything below 2 counts as 2."""
    return max(2, math.ceil(config.connect_timeout))


def connect_bound(config: PoolConfig, driver: str) -> float:
    """Seconds one connect of the engine may take in all: ``connect_timeout``; for psycopg
    with several hosts, libpq's per-host timeout times its attempts (every host, twice
    under prefer-standby: a standby is looked for first, then any host)."""
    if driver != "psycopg" or not needs_routing(config):
        return config.connect_timeout
    passes = 2 if config.target_session_attrs == "prefer-standby" else 1
    attempts = max(1, len(config.host_list())) * passes
    return float(max(config.connect_timeout, libpq_seconds(config) * attempts))


def router(config: PoolConfig, driver: str) -> Route | None:
    """The routed connect of an engine whose driver poolbridge routes (asyncpg, aiomysql,
    asyncmy) when ``config`` uses several hosts or a target; None: the dialect's own
    connect (one host, or libpq's own routing)."""
    if driver not in _ROUTED or not needs_routing(config):
        return None
    import importlib

    path, timeout_key, role_sql = _ROUTED[driver]
    module, _, name = path.partition(":")
    shim = getattr(importlib.import_module(module), name)()

    async def route(creator: Any, limit: float, args: tuple[Any, ...], kw: dict[str, Any]) -> Any:
        async def open_one(host: str, port: int | None, seconds: float) -> Any:
            one = {**kw, "host": host, timeout_key: seconds}
            one.pop("port", None)
            if port is not None:
                one["port"] = port
            return await creator(*args, **one)

        return await routed(shim, config, limit, open_one, role_sql)

    return route


def install(engine: AsyncEngine, state: BridgeState) -> None:
    """The pool and engine listeners of the high-availability knobs (none when ``config``
    uses one host and no target). Registered after poolbridge's own pool listeners, so a
    connection's metadata exists when its retirement is set."""
    config = state.config
    if not needs_routing(config):
        return
    if config.host_recheck_interval is not None:
        libpq = state.driver == "psycopg"
        metas = state.metas

        def on_connect(dbapi_conn: Any, rec: ConnectionPoolEntry) -> None:
            conn = rec.driver_connection
            if libpq:
                _place_libpq(conn, config)
            at = retire_at(conn, config)
            meta = metas.get(rec)
            if at is not None and meta is not None:
                meta.deadline = min(meta.deadline, at)  # inf: no lifetime

        event.listen(engine.sync_engine.pool, "connect", on_connect)

    if config.target_session_attrs in ("read-write", "primary"):

        def on_error(context: Any) -> None:
            exc = context.original_exception  # the DBAPI error, or what it was raised from
            if demoted(config, exc) or demoted(config, exc.__cause__ or exc):
                # this connection's host refuses writes now: replace it, and only it (a
                # read-only transaction of the application's own says nothing of the rest)
                context.is_disconnect = True
                context.invalidate_pool_on_disconnect = False

        event.listen(engine.sync_engine, "handle_error", on_error)


def _place_libpq(conn: Any, config: PoolConfig) -> None:
    """Record where libpq placed a psycopg connection (``conn.info``: no round trip; under
    prefer-standby the standby flag is the ``in_hot_standby`` parameter that servers since
    PostgreSQL 14 report at startup, else one query)."""
    if conn is None:
        return
    info = conn.info
    standby = False
    if config.target_session_attrs == "prefer-standby":
        flag = info.parameter_status("in_hot_standby")
        if flag is None:
            standby = bool(await_(raw_scalar(conn, "SELECT pg_is_in_recovery()")))
        else:
            standby = flag == "on"
    place_libpq(conn, config, info.host, info.port, standby)
