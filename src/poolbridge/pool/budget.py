"""Connection budget: how large may each process's pool be, and does the server agree?

A server accepts ``max_connections`` connections, of which some are reserved (PostgreSQL's
``superuser_reserved_connections`` and, from PostgreSQL 16, ``reserved_connections``) and some
are wanted by other clients (admin sessions, migrations, cron jobs: ``headroom``). What is
left is shared by every process of every replica, and by every pool in each process::

    per_pool = (max_connections - reserved - headroom) // (processes * pools_per_process)

:func:`plan_budget` computes that and refuses a plan that leaves a pool less than one
connection; :meth:`ConnectionBudget.validate` checks a ``max_size`` (or a PoolConfig) against
it. At run time the server is asked how many connections are really free — for everyone
(``max_connections`` minus reserved minus in use) and for the pool's login role (PostgreSQL
``CONNECTION LIMIT``, MariaDB ``MAX_USER_CONNECTIONS``) — in one query, and a
:class:`~poolbridge.errors.ConnectionBudgetWarning` says so when the pool may take more:

- every adapter's ``open()`` does it once, on the first connection the pool opens, before
  anyone uses it (:class:`BudgetAtOpen`; SQLite has no server and is skipped without a
  query); the check is advice: a failure to ask is logged, and with warnings turned into
  errors (``-W error``) the message is logged instead of failing the connect;
- :func:`poolbridge.check_budget` does the same through an open pool's ``acquire()``, on
  demand (it lives with ``open_pool`` because it asks the pool's adapter for a query).

``poolbridge budget`` is the CLI for the same arithmetic.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from poolbridge.errors import ConfigError, ConnectionBudgetWarning

if TYPE_CHECKING:
    from poolbridge.config.model import PoolConfig

__all__ = [
    "BudgetAtOpen",
    "ConnectionBudget",
    "ServerConnections",
    "plan_budget",
    "read_server_connections",
    "warn_budget",
]

logger = logging.getLogger("poolbridge.budget")

#: PostgreSQL's default superuser_reserved_connections, used when the server is not asked
PG_DEFAULT_RESERVED = 3

ScalarQuery = Callable[[str], Awaitable[Any]]


@dataclass(frozen=True, kw_only=True)
class ConnectionBudget:
    """The connections one pool may use, derived from the server's limit (see module doc)."""

    max_connections: int
    reserved: int
    processes: int
    pools_per_process: int = 1
    headroom: int = 0

    @property
    def available(self) -> int:
        """Connections left for the application's pools, all processes together."""
        return self.max_connections - self.reserved - self.headroom

    @property
    def per_process(self) -> int:
        """Connections one process may hold across all its pools."""
        return self.available // self.processes

    @property
    def per_pool(self) -> int:
        """The largest ``max_size`` each pool may have."""
        return self.per_process // self.pools_per_process

    @property
    def unused(self) -> int:
        """Connections left over by the integer division (not assigned to any pool)."""
        return self.available - self.per_pool * self.processes * self.pools_per_process

    def validate(self, max_size: int | PoolConfig) -> list[str]:
        """Problems of a pool of ``max_size`` (or a PoolConfig's) under this budget; [] = fits."""
        size = max_size if isinstance(max_size, int) else max_size.max_size
        if size > self.per_pool:
            total = size * self.processes * self.pools_per_process
            return [
                f"max_size must be <= {self.per_pool} per pool (got max_size={size}): "
                f"{self.processes} process(es) x {self.pools_per_process} pool(s) x {size} = "
                f"{total} connections, but the server leaves {self.available} "
                f"(max_connections={self.max_connections} - reserved={self.reserved} - "
                f"headroom={self.headroom})"
            ]
        return []

    def as_dict(self) -> dict[str, int]:
        return {
            "max_connections": self.max_connections,
            "reserved": self.reserved,
            "headroom": self.headroom,
            "processes": self.processes,
            "pools_per_process": self.pools_per_process,
            "available": self.available,
            "per_process": self.per_process,
            "per_pool": self.per_pool,
            "unused": self.unused,
        }


def plan_budget(
    *,
    max_connections: int,
    reserved: int = PG_DEFAULT_RESERVED,
    processes: int = 1,
    pools_per_process: int = 1,
    headroom: int = 0,
) -> ConnectionBudget:
    """Compute the per-pool budget; ConfigError listing every problem if it cannot work."""
    problems = []
    if max_connections < 1:
        problems.append(f"max_connections must be >= 1 (got {max_connections})")
    if reserved < 0:
        problems.append(f"reserved must be >= 0 (got {reserved})")
    if headroom < 0:
        problems.append(f"headroom must be >= 0 (got {headroom})")
    if processes < 1:
        problems.append(f"processes must be >= 1 (got {processes})")
    if pools_per_process < 1:
        problems.append(f"pools_per_process must be >= 1 (got {pools_per_process})")
    if problems:
        raise ConfigError(problems, source="connection budget")
    budget = ConnectionBudget(
        max_connections=max_connections,
        reserved=reserved,
        processes=processes,
        pools_per_process=pools_per_process,
        headroom=headroom,
    )
    if budget.per_pool < 1:
        raise ConfigError(
            [
                f"the budget leaves {budget.available} connection(s) for "
                f"{processes} process(es) x {pools_per_process} pool(s): every pool needs >= 1 "
                f"(max_connections={max_connections}, reserved={reserved}, headroom={headroom})"
            ],
            source="connection budget",
        )
    return budget


@dataclass(frozen=True, kw_only=True)
class ServerConnections:
    """What the server reports: its limit, reserved slots, connections open right now, and
    the login role's own limit (None: none) and connections."""

    backend: str
    max_connections: int
    reserved: int
    in_use: int
    user_limit: int | None = None
    user_in_use: int = 0

    @property
    def server_free(self) -> int:
        """Connections an ordinary (non-superuser) client can still open on the server."""
        return max(0, self.max_connections - self.reserved - self.in_use)

    @property
    def free(self) -> int:
        """Connections this login role can still open: the server's free slots, capped by
        the role's own limit."""
        if self.user_limit is None:
            return self.server_free
        return min(self.server_free, max(0, self.user_limit - self.user_in_use))

    def describe(self) -> str:
        text = (
            f"max_connections={self.max_connections}, reserved={self.reserved}, "
            f"in use={self.in_use}"
        )
        if self.user_limit is not None:
            text += f"; the role's limit={self.user_limit}, its connections={self.user_in_use}"
        return text


# One round trip each, answering "max,reserved,in_use,role_limit,role_in_use" as text (the
# runners return the first column only). A role's limit does not bind a superuser (-1 = none).
# An unprivileged role sees other roles' backends with a NULL backend_type: counted as clients.
_PG_QUERY = (
    "SELECT concat_ws(',', current_setting('max_connections'),"
    " current_setting('superuser_reserved_connections')::int"
    " + coalesce(current_setting('reserved_connections', true)::int, 0),"
    " (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
    " OR (backend_type IS NULL AND usesysid IS NOT NULL)),"
    " (SELECT CASE WHEN rolsuper THEN -1 ELSE rolconnlimit END FROM pg_roles"
    " WHERE rolname = current_user),"
    " (SELECT count(*) FROM pg_stat_activity WHERE usename = current_user))"
)
# MariaDB/MySQL let one SUPER connection in beyond max_connections instead of reserving
# slots; Threads_connected counts every client. The session value of max_user_connections is
# the account's MAX_USER_CONNECTIONS (0: none); PROCESSLIST shows the account's threads.
_MYSQL_QUERY = (
    "SELECT CONCAT_WS(',', @@max_connections, 0,"
    " (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS"
    " WHERE VARIABLE_NAME = 'THREADS_CONNECTED'),"
    " @@max_user_connections,"
    " (SELECT COUNT(*) FROM information_schema.PROCESSLIST"
    " WHERE USER = SUBSTRING_INDEX(CURRENT_USER(), '@', 1)))"
)
_QUERIES = {"postgresql": _PG_QUERY, "mysql": _MYSQL_QUERY}


async def read_server_connections(backend: str, run: ScalarQuery) -> ServerConnections | None:
    """Ask the server through ``run(sql) -> first column``, one query (None for SQLite: no
    server)."""
    query = _QUERIES.get(backend)
    if query is None:
        return None
    raw = await run(query)
    if isinstance(raw, bytes | bytearray):
        raw = raw.decode()
    values = [int(v) for v in str(raw).split(",")]
    limit = values[3]
    no_limit = limit < 0 if backend == "postgresql" else limit == 0
    return ServerConnections(
        backend=backend,
        max_connections=values[0],
        reserved=values[1],
        in_use=values[2],
        user_limit=None if no_limit else limit,
        user_in_use=values[4],
    )


def over_budget(config: PoolConfig, info: ServerConnections, held: int) -> str | None:
    """The warning text when a pool holding ``held`` connections may open more than the
    server (or the login role) has free; None when it fits."""
    may_open = max(0, config.max_size - held)
    if may_open <= info.free:
        return None
    return (
        f"pool {config.name!r} may open {may_open} more connection(s) (max_size="
        f"{config.max_size}, holding {held}) but the server has only {info.free} free "
        f"({info.describe()}); lower max_size or raise the limit"
    )


def warn_budget(message: str, stacklevel: int | None = None, *, in_connect: bool = True) -> None:
    """Emit ConnectionBudgetWarning pointing at the caller outside poolbridge. Inside a
    connect (the check at open) it is advice: where warnings are errors (``-W error``) it is
    logged instead of raised, so it never fails the connect or open() it runs in; an explicit
    :func:`check_budget` call raises it like any warning."""
    if stacklevel is None:
        stacklevel = _outside_poolbridge()
    try:
        warnings.warn(message, ConnectionBudgetWarning, stacklevel=stacklevel)
    except ConnectionBudgetWarning:
        if not in_connect:
            raise
        logger.warning("%s", message)


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _outside_poolbridge() -> int:
    """The stacklevel of the first frame outside poolbridge and asyncio (2 when none)."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None:
        name = frame.f_code.co_filename
        if not name.startswith(_PACKAGE_DIR) and "asyncio" not in name:
            return level
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return 2


class BudgetAtOpen:
    """The budget check every adapter's ``open()`` runs once (see the module docstring).

    The adapter's glue calls :meth:`check` with a scalar runner on each new physical
    connection before anyone uses it and ``held``, the connections the pool holds or is
    opening (this one included); only the first call asks the server (SQLite: none does).
    A connection being opened that the server does not count yet makes the check lenient
    by one, never wrong the other way.
    """

    __slots__ = ("config", "pending")

    def __init__(self, config: PoolConfig) -> None:
        self.config = config
        self.pending = config.backend in _QUERIES

    async def check(self, run: ScalarQuery, *, held: int = 1) -> ServerConnections | None:
        if not self.pending:
            return None
        self.pending = False
        try:
            info = await read_server_connections(self.config.backend, run)
        except Exception as exc:  # advice only: never break a connect
            logger.warning(
                "pool %r: cannot read the server's connection budget: %s", self.config.name, exc
            )
            return None
        if info is not None:
            message = over_budget(self.config, info, held)
            if message is not None:
                warn_budget(message)
        return info
