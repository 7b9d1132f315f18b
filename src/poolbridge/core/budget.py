"""Connection budget: how large may each process's pool be, and does the server agree?

A server accepts ``max_connections`` connections, of which some are reserved (PostgreSQL's
``superuser_reserved_connections`` and, from PostgreSQL 16, ``reserved_connections``) and some
are wanted by other clients (admin sessions, migrations, cron jobs: ``headroom``). What is
left is shared by every process of every replica, and by every pool in each process::

    per_pool = (max_connections - reserved - headroom) // (processes * pools_per_process)

:func:`plan_budget` computes that and refuses a plan that leaves a pool less than one
connection; :meth:`ConnectionBudget.validate` checks a ``max_size`` (or a PoolConfig) against
it. At run time :func:`check_budget` asks the server through an open pool how many
connections are really free and warns with :class:`~poolbridge.errors.ConnectionBudgetWarning`
when the pool may take more than that (call it right after opening a pool; it costs three
trivial queries on one pooled connection). ``poolbridge budget`` is the CLI for the same
arithmetic.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, ConnectionBudgetWarning

if TYPE_CHECKING:
    from .config import PoolConfig
    from .pool import Pool

__all__ = [
    "ConnectionBudget",
    "ServerConnections",
    "check_budget",
    "plan_budget",
    "read_server_connections",
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
    """What the server reports: its limit, reserved slots, and connections open right now."""

    backend: str
    max_connections: int
    reserved: int
    in_use: int

    @property
    def free(self) -> int:
        """Connections an ordinary (non-superuser) client can still open."""
        return max(0, self.max_connections - self.reserved - self.in_use)


_PG_QUERIES = (
    "SELECT current_setting('max_connections')::int",
    "SELECT current_setting('superuser_reserved_connections')::int"
    " + coalesce(current_setting('reserved_connections', true)::int, 0)",
    "SELECT count(*)::int FROM pg_stat_activity WHERE backend_type = 'client backend'",
)
# MariaDB/MySQL let one SUPER connection in beyond max_connections instead of reserving
# slots; Threads_connected counts every client (PROCESSLIST would only show our own user's).
_MYSQL_QUERIES = (
    "SELECT @@max_connections",
    "SELECT 0",
    "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS"
    " WHERE VARIABLE_NAME = 'THREADS_CONNECTED'",
)


async def read_server_connections(backend: str, run: ScalarQuery) -> ServerConnections | None:
    """Ask the server through ``run(sql) -> first column`` (None for SQLite: no server)."""
    if backend == "postgresql":
        queries = _PG_QUERIES
    elif backend == "mysql":
        queries = _MYSQL_QUERIES
    else:
        return None
    values = [int(await run(sql)) for sql in queries]
    return ServerConnections(
        backend=backend, max_connections=values[0], reserved=values[1], in_use=values[2]
    )


async def check_budget(pool: Pool[Any], *, stacklevel: int = 2) -> ServerConnections | None:
    """Warn (ConnectionBudgetWarning) if the server has fewer free connections than ``pool``
    may still open (``max_size`` minus the connections it holds already).

    Returns what the server reported (None for SQLite, or when the server could not be
    asked: a failed check is logged and never fails the caller).
    """
    from .registry import get_adapter

    adapter = get_adapter(pool.adapter)
    try:
        async with pool.acquire() as conn:

            async def run(sql: str) -> Any:
                return await adapter.fetch_scalar(conn, sql)

            info = await read_server_connections(pool.config.backend, run)
    except Exception as exc:  # the check is advisory: never break an open()
        logger.warning("pool %r: cannot read the server's connection budget: %s", pool.name, exc)
        return None
    if info is None:
        return None
    stats = pool.stats()
    held = int(stats.get("connection.count.idle", 0)) + int(stats.get("connection.count.used", 0))
    may_open = max(0, pool.config.max_size - held)
    if may_open > info.free:
        warnings.warn(
            f"pool {pool.name!r} may open {may_open} more connection(s) (max_size="
            f"{pool.config.max_size}, holding {held}) but the server has only {info.free} "
            f"free (max_connections={info.max_connections}, reserved={info.reserved}, "
            f"in use={info.in_use}); lower max_size or raise the server's limit",
            ConnectionBudgetWarning,
            stacklevel=stacklevel,
        )
    return info
