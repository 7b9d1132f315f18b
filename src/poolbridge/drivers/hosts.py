"""Several hosts for the engine-backed drivers: one host per connect attempt, checked.

libpq (psycopg) routes by itself (``drivers/psycopg/conninfo.py`` passes ``host=h1,h2``,
``target_session_attrs`` and ``load_balance_hosts``). asyncpg, aiopg, aiomysql and asyncmy
open connections through :func:`connect_routed` (the engine's driver shims, and SQLAlchemy
engines through the dialect's connect function), which does the same job the same way:

- hosts are tried in the configured order (shuffled per connect with
  ``load_balance_hosts="random"``); a refused host costs nothing, and a host that hangs
  costs one ``connect_timeout``: the engine bounds each connect attempt by it, the host is
  remembered as down, and the engine's next attempt (``retry.attempts``, 3 by default)
  starts with the other hosts;
- each connection is checked server-side (:data:`PG_ROLE_SQL` / :data:`MYSQL_ROLE_SQL`)
  against ``target_session_attrs``: ``primary``/``standby`` by recovery state (MySQL: the
  read_only flags), ``read-write``/``read-only`` by whether the session accepts writes;
  ``prefer-standby`` takes a standby when one answers, else the first host that answered;
- a host that failed to connect is remembered as down (process-wide, per host and port)
  for :data:`DOWN_INITIAL` seconds, doubling per failure up to :data:`DOWN_MAX`, and is
  tried only after the hosts not known to be down; a successful connect forgets it;
- a connection that fell back to a less preferred host (a later host in the list, or a
  primary under prefer-standby) is marked; once ``host_recheck_interval`` has passed,
  :func:`retired` says so and the shims report it closed, so the engine replaces it and
  the replacement tries the preferred hosts again.

When no host fits, :class:`NoSuitableHost` (a ConnectionError: connection-class for the
engine's retry and ``poolbridge.retry``) names every host with what happened there.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from time import monotonic
from typing import Any

from poolbridge.config.model import PoolConfig
from poolbridge.pool.retrying import is_read_only_error

__all__ = [
    "DOWN_INITIAL",
    "DOWN_MAX",
    "MYSQL_ROLE_SQL",
    "PG_ROLE_SQL",
    "NoSuitableHost",
    "connect_routed",
    "forget_down_hosts",
    "host_of",
    "needs_routing",
    "place_libpq",
    "read_only_error",
    "retire_at",
    "retired",
]

#: first and longest time a host that failed to connect is tried only after the others
DOWN_INITIAL = 1.0
DOWN_MAX = 30.0

#: bit 1: the server is in recovery (a standby); bit 2: the session refuses writes
PG_ROLE_SQL = (
    "SELECT (CASE WHEN pg_is_in_recovery() THEN 1 ELSE 0 END)"
    " + (CASE WHEN current_setting('transaction_read_only') = 'on' THEN 2 ELSE 0 END)"
)
#: MySQL/MariaDB have no recovery state: a replica is marked by its read_only flags
MYSQL_ROLE_SQL = "SELECT IF(@@global.read_only OR @@global.innodb_read_only, 3, 0)"


class NoSuitableHost(ConnectionError):
    """No host accepted a connection that satisfies ``target_session_attrs``."""


@dataclass
class _Down:
    until: float
    backoff: float


@dataclass(frozen=True)
class _Placed:
    host: str
    port: int | None
    fallback_at: float | None  # monotonic time it fell back, None on a preferred host


_down: dict[tuple[str, int | None], _Down] = {}
_placed: weakref.WeakKeyDictionary[Any, _Placed] = weakref.WeakKeyDictionary()


def needs_routing(config: PoolConfig) -> bool:
    """True when connects go through :func:`connect_routed` (several hosts or a target)."""
    return config.multi_host


def forget_down_hosts() -> None:
    """Forget every host remembered as down (tests; a config change)."""
    _down.clear()


def _is_down(key: tuple[str, int | None], now: float) -> bool:
    entry = _down.get(key)
    return entry is not None and now < entry.until


def _mark_down(key: tuple[str, int | None], now: float) -> None:
    entry = _down.get(key)
    backoff = DOWN_INITIAL if entry is None else min(entry.backoff * 2, DOWN_MAX)
    _down[key] = _Down(until=now + backoff, backoff=backoff)


def _fits(target: str, role: int) -> bool:
    standby, read_only = bool(role & 1), bool(role & 2)
    return {
        "any": True,
        "primary": not standby,
        "standby": standby,
        "read-write": not read_only,
        "read-only": read_only,
        "prefer-standby": standby,
    }[target]


def _shown(host: str, port: int | None) -> str:
    name = f"[{host}]" if ":" in host else host
    return name if port is None else f"{name}:{port}"


async def connect_routed(
    config: PoolConfig,
    timeout: float,
    open_one: Callable[[str, int | None, float], Awaitable[Any]],
    role_of: Callable[[Any], Awaitable[Any]],
    discard: Callable[[Any], None],
) -> Any:
    """Open one connection on the first host that fits ``config`` (see the module doc).

    ``open_one(host, port, seconds)`` opens a connection with every session setting;
    ``role_of(conn)`` runs :data:`PG_ROLE_SQL` or :data:`MYSQL_ROLE_SQL`; ``discard(conn)``
    closes one at once. ``timeout`` bounds the whole attempt.
    """
    hosts = config.host_list()
    if config.load_balance_hosts == "random":
        random.shuffle(hosts)
    start = monotonic()
    deadline = start + timeout
    order = [h for h in hosts if not _is_down(h, start)] + [h for h in hosts if _is_down(h, start)]
    target = config.target_session_attrs
    spare: tuple[Any, str, int | None] | None = None  # prefer-standby: first non-standby
    seen: list[str] = []
    unreachable = {h for h in hosts if _is_down(h, start)}
    try:
        for host, port in order:
            left = deadline - monotonic()
            if left <= 0:
                seen.append(f"{_shown(host, port)}: not tried (connect time used up)")
                continue
            try:
                async with asyncio.timeout(min(config.connect_timeout, left)):
                    conn = await open_one(host, port, min(config.connect_timeout, left))
            except asyncio.CancelledError:
                if monotonic() >= deadline - 0.05:
                    # the caller's bound of the whole attempt ran out on this host (the
                    # engine gives each attempt connect_timeout): its next attempt starts
                    # with the other hosts. A caller cancelling early says nothing of it.
                    _mark_down((host, port), monotonic())
                raise
            except Exception as exc:
                _mark_down((host, port), monotonic())
                unreachable.add((host, port))
                seen.append(f"{_shown(host, port)}: {type(exc).__name__}: {_first_line(exc)}")
                continue
            _down.pop((host, port), None)
            try:
                role = int(await role_of(conn))
            except BaseException as exc:
                discard(conn)
                if not isinstance(exc, Exception):
                    raise
                seen.append(f"{_shown(host, port)}: session check failed: {type(exc).__name__}")
                continue
            if _fits(target, role):
                if spare is not None:
                    discard(spare[0])
                    spare = None
                # a fallback: a host earlier in the list could not be reached (with random
                # order no host is preferred over another)
                earlier = hosts[: hosts.index((host, port))]
                preferred = config.load_balance_hosts == "random" or not unreachable & set(earlier)
                _place(conn, host, port, preferred)
                return conn
            if target == "prefer-standby" and spare is None:
                spare = (conn, host, port)
                continue
            discard(conn)
            seen.append(f"{_shown(host, port)}: does not satisfy target_session_attrs={target}")
    except BaseException:
        if spare is not None:  # cancelled while a fallback was held: close it
            discard(spare[0])
        raise
    if spare is not None:
        conn, host, port = spare
        _place(conn, host, port, preferred=False)
        return conn
    raise NoSuitableHost(
        f"no host satisfies target_session_attrs={target} within "
        f"{monotonic() - start:.2f}s: " + "; ".join(seen)
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else "(no message)"


def _place(conn: Any, host: str, port: int | None, preferred: bool) -> None:
    with contextlib.suppress(TypeError):  # no weak references: no re-check for it
        _placed[conn] = _Placed(host, port, None if preferred else monotonic())


def host_of(conn: Any) -> tuple[str, int | None] | None:
    """(host, port) a routed connection was opened on, None for other connections."""
    placed = _placed.get(conn)
    return None if placed is None else (placed.host, placed.port)


def retire_at(conn: Any, config: PoolConfig | None) -> float | None:
    """The monotonic instant from which :func:`retired` holds for ``conn`` (it fell back to
    a less preferred host; ``host_recheck_interval`` later it is replaced), None: never.

    For a pool that expires connections at a deadline it keeps (SQLAlchemy's BridgePool)."""
    if config is None or config.host_recheck_interval is None:
        return None
    placed = _placed.get(conn)
    if placed is None or placed.fallback_at is None:
        return None
    return placed.fallback_at + config.host_recheck_interval


def retired(conn: Any, config: PoolConfig | None) -> bool:
    """True when ``conn`` fell back to a less preferred host more than
    ``host_recheck_interval`` seconds ago (the engine then replaces it)."""
    at = retire_at(conn, config)
    return at is not None and monotonic() >= at


def place_libpq(conn: Any, config: PoolConfig, host: str, port: int | None, standby: bool) -> None:
    """Record where libpq placed ``conn`` by itself (``host=h1,h2``, psycopg), for
    :func:`retire_at` / :func:`retired`.

    libpq does not say why it passed a host over (down, or not fitting the target), so a
    connection counts as a fallback only where its own placement proves one: a server not
    in recovery under ``prefer-standby`` (no standby answered), or, with ``target_session_
    attrs="any"`` in list order (every host that answers fits), a host after the first."""
    hosts = config.host_list()
    target = config.target_session_attrs
    if target == "prefer-standby":
        preferred = standby
    elif target == "any" and config.load_balance_hosts == "disable" and hosts:
        first_host, first_port = hosts[0]
        preferred = first_host == host and first_port in (None, port)
    else:
        preferred = True
    _place(conn, host, port, preferred)


#: "this host refuses writes" (SQLSTATE 25006, MySQL 1290/1792/1836): for a pool whose
#: target is read-write or primary, the host was demoted and the connection is broken
read_only_error = is_read_only_error


def demoted(config: PoolConfig | None, exc: BaseException) -> bool:
    """True when ``exc`` says the host refuses writes and ``config`` wants a writable one."""
    return (
        config is not None
        and config.target_session_attrs in ("read-write", "primary")
        and read_only_error(exc)
    )


async def routed(
    shim: Any,
    config: PoolConfig,
    timeout: float,
    open_one: Callable[[str, int | None, float], Awaitable[Any]],
    role_sql: str,
) -> Any:
    """:func:`connect_routed` for a driver shim: its ``terminate`` discards, the role query
    runs through :func:`poolbridge.drivers.base.raw_scalar`, and the shim keeps the config
    (``routed_config``) for :func:`retired` and :func:`demoted`."""
    from poolbridge.drivers.base import raw_scalar

    shim.routed_config = config

    async def role_of(conn: Any) -> Any:
        return await raw_scalar(conn, role_sql)

    return await connect_routed(config, timeout, open_one, role_of, shim.terminate)


#: the high-availability knobs, each with why SQLite cannot honour it
SQLITE_REFUSED_HA: dict[str, str] = {
    "hosts": "SQLite opens a local file: there are no hosts to choose from",
    "target_session_attrs": "SQLite has no primary or standby: one local file",
    "load_balance_hosts": "SQLite opens a local file: there are no hosts to balance",
    "host_recheck_interval": "SQLite opens a local file: there is no host to fall back from",
}


def sqlite_refused_hosts(config: PoolConfig) -> dict[str, str]:
    """The high-availability knobs ``config`` sets, refused for SQLite with the reason."""
    defaults = {f.name: f.default for f in dataclasses.fields(PoolConfig)}
    return {k: why for k, why in SQLITE_REFUSED_HA.items() if getattr(config, k) != defaults[k]}
