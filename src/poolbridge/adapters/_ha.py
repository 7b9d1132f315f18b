"""The high-availability rows of every adapter's translation table.

Three ways a stack honours ``hosts``, ``target_session_attrs``, ``load_balance_hosts`` and
``host_recheck_interval``:

- ``engine``: poolbridge's driver shims open every connection through
  :mod:`poolbridge.drivers.hosts` (asyncpg, aiopg, aiomysql, asyncmy, wherever they run:
  the raw adapters, Tortoise's and peewee-async's engine-backed clients);
- ``libpq``: libpq routes by itself (``host=h1,h2``, ``target_session_attrs``,
  ``load_balance_hosts`` in the conninfo, ``connect_timeout`` per host); psycopg_pool
  replaces connections by age only, so ``host_recheck_interval`` cannot hold there;
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
    "LIBPQ_HA",
    "LIBPQ_RECHECK",
    "SQLITE_REFUSED_HA",
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
    config: PoolConfig, mode: Literal["engine", "libpq", "refuse"], why: str = ""
) -> tuple[dict[str, str], dict[str, str]]:
    """(emulated, unsupported) rows of the high-availability knobs for one stack.

    ``why`` (``refuse`` only) says why the stack's connections cannot be routed."""
    if mode == "engine":
        return dict(ENGINE_HA), {}
    if mode == "libpq":  # native: the conninfo keys (drivers/psycopg/conninfo.py)
        unsupported = {}
        if config.host_recheck_interval is not None and (
            config.multi_host or config.host_recheck_interval != _DEFAULT_RECHECK
        ):
            unsupported["host_recheck_interval"] = LIBPQ_RECHECK
        return {}, unsupported
    return {}, {k: why for k in ha_set(config)}
