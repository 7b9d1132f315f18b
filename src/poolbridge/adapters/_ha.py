"""The high-availability rows of every adapter's translation table.

Five ways a stack honours ``hosts``, ``target_session_attrs``, ``load_balance_hosts`` and
``host_recheck_interval``:

- ``engine``: poolbridge's driver shims open every connection through
  :mod:`poolbridge.drivers.hosts` (asyncpg, aiopg, aiomysql, asyncmy, wherever they run:
  the raw adapters, Tortoise's and peewee-async's engine-backed clients);
- ``libpq``: libpq routes by itself (``host=h1,h2``, ``target_session_attrs``,
  ``load_balance_hosts`` in the conninfo, ``connect_timeout`` per host); psycopg_pool
  replaces connections by age only, so ``host_recheck_interval`` cannot hold there;
- ``wrapped``: the stack opens each connection with the driver's connect function, which
  poolbridge hands it wrapped (SQLAlchemy's ``async_creator_fn`` on asyncpg, aiomysql,
  asyncmy): the wrapper routes through :mod:`poolbridge.drivers.hosts` as the driver shims
  do, and the stack's pool (poolbridge's) expires fallback connections;
- ``libpq-expiry``: libpq routes (as ``libpq``) under a pool of poolbridge's that expires
  the connections libpq placed on a fallback host (SQLAlchemy on psycopg);
- ``refuse``: the stack's connections do not go through either; every knob that is set
  is refused by name (UnsupportedOptionError), never dropped.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from poolbridge.config.model import PoolConfig
from poolbridge.drivers.hosts import SQLITE_REFUSED_HA

__all__ = [
    "ENGINE_HA",
    "HA_KNOBS",
    "LIBPQ_EXPIRY_HA",
    "LIBPQ_HA",
    "LIBPQ_RECHECK",
    "SQLITE_REFUSED_HA",
    "WRAPPED_HA",
    "ha_rows",
    "ha_set",
    "refused_ha",
]

HA_KNOBS: tuple[str, ...] = (
    "hosts",
    "target_session_attrs",
    "load_balance_hosts",
    "host_recheck_interval",
)

ENGINE_HA: dict[str, str] = {
    "hosts": "emulated: the driver shim tries one host per connect attempt, each "
    "bounded by connect_timeout; a host that failed is tried last for a backed-off while",
    "target_session_attrs": "emulated: the driver shim checks each new session "
    "(pg_is_in_recovery() and transaction_read_only / @@read_only, @@innodb_read_only); "
    "read-only errors (25006, 1290, 1792, 1836) break a read-write pool's connection",
    "load_balance_hosts": "emulated: the driver shim shuffles the hosts per connect",
    "host_recheck_interval": "emulated: a connection on a fallback host is reported closed "
    "after it, so the engine replaces it and the preferred hosts are tried again",
}
#: the libpq rows as the hand-written adapter pages show them (native conninfo keys)
LIBPQ_HA: dict[str, str] = {
    "hosts": "libpq: host=h1,h2 port=p1,p2 (connect_timeout per host)",
    "target_session_attrs": "libpq: target_session_attrs, checked at connect",
    "load_balance_hosts": "libpq: load_balance_hosts",
}
LIBPQ_RECHECK = (
    "psycopg_pool replaces connections by max_lifetime and max_idle only: a connection "
    "that fell back to another host stays there until then"
)
_DEMOTED_DISCONNECT = (
    "a read-only error ({codes}) on a read-write/primary pool is a disconnect (handle_error "
    "event): that connection is invalidated and replaced"
)
_EXPIRES = (
    "the pool class expires it at that instant (as max_lifetime: checked at checkout, "
    "checkin and by the maintenance task), so its replacement tries the preferred hosts again"
)
#: the driver's connect function wrapped (SQLAlchemy's do_connect event on asyncpg,
#: aiomysql, asyncmy): drivers/hosts.py routes, the stack's pool is poolbridge's
WRAPPED_HA: dict[str, str] = {
    "hosts": "the do_connect event's connect wrapper tries one host per attempt (the "
    "dialect's arguments, host and port replaced), each bounded by connect_timeout; a host "
    "that failed is tried last for a backed-off while (drivers/hosts.py, as the driver "
    "shims; asyncpg's own multi-host connect is not used: it shares one timeout)",
    "target_session_attrs": "the connect wrapper checks each new session (pg_is_in_recovery() "
    "and transaction_read_only / @@read_only, @@innodb_read_only); "
    + _DEMOTED_DISCONNECT.format(codes="25006, 1290, 1792, 1836"),
    "load_balance_hosts": "the connect wrapper shuffles the hosts per connect",
    "host_recheck_interval": "a connection on a fallback host (a later host than one that "
    "could not be reached, or a primary under prefer-standby) is due after it: " + _EXPIRES,
}
#: libpq routes under a pool of poolbridge's (SQLAlchemy on psycopg): the conninfo keys are
#: native; these are what poolbridge adds
LIBPQ_EXPIRY_HA: dict[str, str] = {
    "hosts": "libpq tries the hosts in order, connect_timeout per host (whole seconds, at "
    "least 2); the bound of the whole connect covers every host",
    "target_session_attrs": "libpq checks each session at connect; "
    + _DEMOTED_DISCONNECT.format(codes="SQLSTATE 25006"),
    "host_recheck_interval": "a connection libpq placed on a fallback host is due after it: "
    + _EXPIRES
    + ". libpq does not say why it passed a host over, so only the placements "
    "that prove a fallback count: a primary under prefer-standby, and with target "
    "any (in list order) any host after the first",
}


_DEFAULT_RECHECK = PoolConfig.__dataclass_fields__["host_recheck_interval"].default


def refused_ha(why: str) -> dict[str, str]:
    """Every high-availability knob refused with ``why`` (documentation tables)."""
    return {k: why for k in HA_KNOBS}


def ha_set(config: PoolConfig) -> set[str]:
    """The high-availability knobs ``config`` sets to something other than the default
    (``host_recheck_interval`` counts only when several hosts or a target are set)."""
    defaults = {f.name: f.default for f in dataclasses.fields(PoolConfig)}
    out = {k for k in HA_KNOBS if getattr(config, k) != defaults[k]}
    if config.multi_host and config.host_recheck_interval is not None:
        out.add("host_recheck_interval")
    return out


def ha_rows(
    config: PoolConfig,
    mode: Literal["engine", "wrapped", "libpq", "libpq-expiry", "refuse"],
    why: str = "",
) -> tuple[dict[str, str], dict[str, str]]:
    """(emulated, unsupported) rows of the high-availability knobs for one stack.

    ``wrapped`` and ``libpq-expiry`` give rows for the knobs ``config`` sets only (a stack
    whose plain-arguments mode cannot carry them warns about the ones left at defaults).
    ``why`` (``refuse`` only) says why the stack's connections cannot be routed."""
    if mode == "engine":
        return dict(ENGINE_HA), {}
    if mode in ("wrapped", "libpq-expiry"):
        rows = WRAPPED_HA if mode == "wrapped" else LIBPQ_EXPIRY_HA
        return {k: rows[k] for k in HA_KNOBS if k in rows and k in ha_set(config)}, {}
    if mode == "libpq":  # native: the conninfo keys (drivers/psycopg/conninfo.py)
        unsupported = {}
        if config.host_recheck_interval is not None and (
            config.multi_host or config.host_recheck_interval != _DEFAULT_RECHECK
        ):
            unsupported["host_recheck_interval"] = LIBPQ_RECHECK
        return {}, unsupported
    return {}, {k: why for k in ha_set(config)}
