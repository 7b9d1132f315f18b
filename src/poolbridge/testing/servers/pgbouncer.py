"""Run a private pgbouncer in front of a PostgreSQL server, for pgbouncer-mode tests.

    async with PgBouncer(upstream_port=5432) as bouncer:   # transaction pooling
        url = bouncer.url_for("postgresql://root@127.0.0.1:5432/test")
        servers = await bouncer.show("SERVERS")             # list of dict rows

Each instance writes its own ini, auth file, log and pid file into a temporary directory,
listens on a free loopback port (no Unix socket, so it never collides with a system
pgbouncer) and runs in the foreground as a child process. pgbouncer refuses to run as root,
so as root it runs as the ``postgres`` system user (``run_as``).

Pinned settings: ``pool_mode = transaction`` and, on pgbouncer >= 1.21 (which track
protocol-level prepared statements and enable that by default), ``max_prepared_statements =
0`` so that a driver's prepared statements break exactly as they do on 1.18, Debian 12's
version, which does not know the option. Authentication (``auth_type = hba``): the users
in ``users`` are trusted and forwarded as is to the upstream server (which trusts loopback in
the test setup); any other role (the conformance suite's per-test roles) must give its
PostgreSQL password, which pgbouncer checks with SCRAM against the secret ``auth_query``
reads from ``pg_shadow`` as the first of ``users``. The admin console (``pgbouncer``
database) accepts ``admin_user`` as admin and ``users`` as stats users (SHOW only).

:meth:`PgBouncer.show` speaks the simple query protocol itself (the admin console accepts no
other), so counting clients and servers needs no driver.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from poolbridge.testing.admin import PostgresAdmin
from poolbridge.testing.servers.proxy import upstream_port

__all__ = ["PgBouncer", "PgBouncerAdmin", "client_port", "pgbouncer_binary", "pgbouncer_version"]

ADMIN_USER = "pgbouncer_admin"


def pgbouncer_binary() -> str | None:
    """Path of the pgbouncer executable, or None when it is not installed."""
    return shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if os.path.exists("/usr/sbin/pgbouncer") else None
    )


def pgbouncer_version(binary: str | None = None) -> tuple[int, int]:
    """``(major, minor)`` of the installed pgbouncer (``pgbouncer --version``)."""
    exe = binary or pgbouncer_binary()
    if exe is None:
        raise FileNotFoundError("pgbouncer is not installed (apt-get install pgbouncer)")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"(\d+)\.(\d+)", out)
    if match is None:
        raise RuntimeError(f"cannot read the pgbouncer version from {out!r}")
    return int(match.group(1)), int(match.group(2))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PgBouncer:
    """A pgbouncer process of our own; see the module docstring."""

    host = "127.0.0.1"

    def __init__(
        self,
        *,
        upstream_host: str = "127.0.0.1",
        upstream_port: int = 5432,
        pool_mode: str = "transaction",
        default_pool_size: int = 4,
        users: Iterable[str] = ("root", "postgres"),
        ignore_startup_parameters: Iterable[str] = ("extra_float_digits",),
        run_as: str | None = "postgres",
        extra: dict[str, str] | None = None,
    ) -> None:
        if upstream_host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"upstream_host must be a loopback address (got {upstream_host!r})")
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.pool_mode = pool_mode
        self.default_pool_size = default_pool_size
        self.users = (*users, ADMIN_USER)
        self.ignore_startup_parameters = tuple(ignore_startup_parameters)
        self.run_as = run_as if (hasattr(os, "geteuid") and os.geteuid() == 0) else None
        self.extra = dict(extra or {})
        self.port = 0
        self.dir: Path | None = None
        self.version: tuple[int, int] | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # -- addresses ---------------------------------------------------------------------------

    def url_for(self, url: str) -> str:
        """``url`` pointed at pgbouncer (user, database and query kept)."""
        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = (f"{userinfo}@" if userinfo else "") + f"{self.host}:{self.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

    @property
    def log_path(self) -> Path:
        if self.dir is None:
            raise RuntimeError("PgBouncer was not started")
        return self.dir / "pgbouncer.log"

    def ini(self) -> str:
        """The ini file this instance runs with."""
        assert self.dir is not None
        settings = {
            "listen_addr": self.host,
            "listen_port": str(self.port),
            "unix_socket_dir": "",
            "auth_type": "hba",
            "auth_hba_file": str(self.dir / "hba.conf"),
            "auth_file": str(self.dir / "userlist.txt"),
            "auth_user": self.users[0],
            "auth_query": "SELECT usename, passwd FROM pg_shadow WHERE usename=$1",
            "admin_users": ADMIN_USER,
            "stats_users": ", ".join(u for u in self.users if u != ADMIN_USER),
            "pool_mode": self.pool_mode,
            "default_pool_size": str(self.default_pool_size),
            "max_client_conn": "500",
            "logfile": str(self.log_path),
            "pidfile": str(self.dir / "pgbouncer.pid"),
            "server_login_retry": "1",
        }
        if self.ignore_startup_parameters:
            settings["ignore_startup_parameters"] = ",".join(self.ignore_startup_parameters)
        if self.version is not None and self.version >= (1, 21):
            settings["max_prepared_statements"] = "0"
        settings.update(self.extra)
        lines = [
            "[databases]",
            f"* = host={self.upstream_host} port={self.upstream_port}",
            "",
            "[pgbouncer]",
            *(f"{k} = {v}" for k, v in settings.items()),
        ]
        return "\n".join(lines) + "\n"

    def hba(self) -> str:
        """The auth_hba_file: ``users`` trusted, every other role checked by SCRAM."""
        return (
            f"host all {','.join(self.users)} 127.0.0.1/32 trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout: float = 15.0) -> PgBouncer:
        """Write the config, start pgbouncer and wait until it accepts connections."""
        if self._proc is not None:
            return self
        exe = pgbouncer_binary()
        if exe is None:
            raise FileNotFoundError("pgbouncer is not installed (make pgbouncer)")
        self.version = pgbouncer_version(exe)
        self.dir = Path(tempfile.mkdtemp(prefix="poolbridge-pgbouncer-"))
        self.port = _free_port()
        (self.dir / "userlist.txt").write_text("".join(f'"{u}" ""\n' for u in self.users))
        (self.dir / "hba.conf").write_text(self.hba())
        ini = self.dir / "pgbouncer.ini"
        ini.write_text(self.ini())
        if self.run_as is not None:
            import pwd

            entry = pwd.getpwnam(self.run_as)
            for path in (self.dir, *self.dir.iterdir()):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._proc = subprocess.Popen(
            [exe, str(ini)],
            user=self.run_as,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                log = self._read_log()
                self.stop()
                raise RuntimeError(f"pgbouncer exited at start:\n{log}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return self
            except OSError as exc:
                if time.monotonic() > deadline:
                    log = self._read_log()
                    self.stop()
                    msg = f"pgbouncer did not listen within {timeout}s:\n{log}"
                    raise RuntimeError(msg) from exc
                time.sleep(0.05)

    def stop(self) -> None:
        """Terminate pgbouncer (every client and server connection ends) and remove its dir."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def _read_log(self) -> str:
        try:
            return self.log_path.read_text()[-3000:]
        except OSError:
            return "(no log)"

    def __enter__(self) -> PgBouncer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> PgBouncer:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    # -- admin console -----------------------------------------------------------------------

    async def show(self, what: str, *, timeout: float = 5.0) -> list[dict[str, str | None]]:
        """Rows of ``SHOW <what>`` (CLIENTS, SERVERS, POOLS, ...) from the admin console."""
        if not re.fullmatch(r"[A-Za-z_]+", what):
            raise ValueError(f"not a SHOW command: {what!r}")
        return await asyncio.wait_for(self._simple_query(f"SHOW {what}"), timeout)

    async def server_count(self, database: str | None = None, user: str | None = None) -> int:
        """Server connections pgbouncer holds (optionally for one database / user)."""
        return _count(await self.show("SERVERS"), database, user)

    async def client_count(self, database: str | None = None, user: str | None = None) -> int:
        """Client connections pgbouncer holds (the admin console's own one excluded)."""
        rows = [r for r in await self.show("CLIENTS") if r.get("database") != "pgbouncer"]
        return _count(rows, database, user)

    async def _simple_query(self, sql: str) -> list[dict[str, str | None]]:
        return await _simple_query(self.host, self.port, ADMIN_USER, sql)


def _count(rows: list[dict[str, str | None]], database: str | None, user: str | None) -> int:
    return sum(
        1
        for r in rows
        if (database is None or r.get("database") == database)
        and (user is None or r.get("user") == user)
    )


async def _message(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readexactly(5)
    (length,) = struct.unpack("!i", head[1:])
    return head[:1], await reader.readexactly(length - 4)


async def _until_ready(reader: asyncio.StreamReader) -> None:
    while True:
        kind, payload = await _message(reader)
        if kind == b"E":
            raise RuntimeError(f"pgbouncer admin login failed: {_error_text(payload)}")
        if kind == b"R" and struct.unpack("!i", payload[:4])[0] != 0:
            raise RuntimeError("pgbouncer admin console asked for a password (expected trust)")
        if kind == b"Z":
            return


def _row_description(payload: bytes) -> list[str]:
    (count,) = struct.unpack("!h", payload[:2])
    names, pos = [], 2
    for _ in range(count):
        end = payload.index(b"\0", pos)
        names.append(payload[pos:end].decode())
        pos = end + 1 + 18  # table oid, column no, type oid, size, modifier, format
    return names


def _data_row(payload: bytes) -> list[str | None]:
    (count,) = struct.unpack("!h", payload[:2])
    values: list[str | None] = []
    pos = 2
    for _ in range(count):
        (length,) = struct.unpack("!i", payload[pos : pos + 4])
        pos += 4
        if length < 0:
            values.append(None)
        else:
            values.append(payload[pos : pos + length].decode())
            pos += length
    return values


def _error_text(payload: bytes) -> str:
    fields = payload.split(b"\0")
    return "; ".join(f[1:].decode(errors="replace") for f in fields if f[:1] in (b"C", b"M"))


# -- the conformance suite's view of a pgbouncer target ---------------------------------------

#: why a single pool connection cannot be killed through pgbouncer (fault rows are closed)
NO_KILL = (
    "pgbouncer has no command that closes one client connection (KILL closes every client "
    "of a database), and terminating the server connection behind it is invisible to a "
    "client in transaction pooling, which holds no server connection between transactions"
)


def client_port(native: Any) -> int | None:
    """The local TCP port of a driver connection (asyncpg, psycopg 3, aiopg/psycopg2), or
    None when it is not a TCP connection or its socket cannot be found.

    Through pgbouncer that port is what names the connection: pgbouncer lists it in SHOW
    CLIENTS, while the backend pid the driver reports is a random cancel key of its own.
    """
    name: Any = None
    transport = getattr(native, "_transport", None)  # asyncpg.Connection
    if transport is not None and hasattr(transport, "get_extra_info"):
        name = transport.get_extra_info("sockname")
    else:
        for holder in (native, getattr(native, "raw", None)):  # psycopg 3; aiopg's psycopg2
            fileno = getattr(holder, "fileno", None)
            if callable(fileno):
                try:
                    fd = os.dup(fileno())
                except Exception:  # closed connection
                    return None
                with socket.socket(fileno=fd) as sock:
                    name = sock.getsockname()
                break
    if isinstance(name, tuple) and len(name) >= 2:
        return int(name[1])
    return None


class PgBouncerAdmin(PostgresAdmin):
    """The suite's server view of a PostgreSQL server behind pgbouncer in transaction pooling.

    The dburl is pgbouncer's address. The pool's connections are pgbouncer *clients*, so
    they are counted with ``SHOW CLIENTS`` (by the test role) and pgbouncer's own
    connections to PostgreSQL with ``SHOW SERVERS``, on the admin console (database
    ``pgbouncer``, same host, port and credentials: the URL's user must be one of
    pgbouncer's ``stats_users`` or ``admin_users``).

    A pool connection is named by its client TCP port: the backend pid a driver reports is
    a random cancel key pgbouncer made up, and ``SELECT pg_backend_pid()`` names whichever
    server connection runs that statement. Hook events are mapped to the port of the
    driver connection's socket (:func:`client_port`); inside a connection
    (:meth:`connection_id`) the connection tags itself with a unique application_name, which
    pgbouncer tracks per client and shows in SHOW CLIENTS, and restores it.

    SQL (roles, tables, counts) goes through pgbouncer too, without prepared statements.
    """

    via = "pgbouncer"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._console: Any = None
        self._ports: dict[int | str, int] = {}

    async def connect(self) -> None:
        __tracebackhide__ = True  # its locals hold credentials: keep them out of reports
        await super().connect()
        dbu = self.config.database_url
        if self._kind == "psycopg":
            import psycopg

            kw: dict[str, Any] = {
                "host": dbu.host or dbu.query.get("host"),
                "port": dbu.port or 5432,
                "user": dbu.username,
                "password": dbu.password,
            }
            # the console speaks the simple query protocol only: psycopg uses it for a
            # statement without parameters, unless it prepares it (after 5 runs by default)
            self._console = await psycopg.AsyncConnection.connect(
                dbname="pgbouncer",
                autocommit=True,
                prepare_threshold=None,
                connect_timeout=5,
                **{k: v for k, v in kw.items() if v},
            )

    def driver_options(self) -> dict[str, Any]:
        """No named prepared statements: the admin's SQL goes through transaction pooling."""
        if self._kind == "psycopg":
            return {"prepare_threshold": None}
        return {"statement_cache_size": 0}

    async def close(self) -> None:
        if self._console is not None:
            with contextlib.suppress(Exception):
                await self._console.close()
        await super().close()

    async def show(self, what: str) -> list[dict[str, str | None]]:
        """Rows of ``SHOW <what>`` from pgbouncer's admin console, values as text."""
        if not re.fullmatch(r"[A-Za-z_]+", what):
            raise ValueError(f"not a SHOW command: {what!r}")
        if self._console is None:  # no psycopg: the protocol client (trust only)
            dbu = self.config.database_url
            host, port = dbu.host or "127.0.0.1", dbu.port or 5432
            return await asyncio.wait_for(
                _simple_query(host, port, dbu.username or "postgres", f"SHOW {what}"), 5.0
            )
        cur = await self._console.execute(f"SHOW {what}")
        names = [d.name for d in cur.description or ()]
        return [
            {n: (None if v is None else str(v)) for n, v in zip(names, row, strict=True)}
            for row in await cur.fetchall()
        ]

    async def _clients(self) -> list[dict[str, str | None]]:
        return [r for r in await self.show("CLIENTS") if r.get("database") != "pgbouncer"]

    def connection_key(self, connection_id: int | str | None, native: Any) -> int | str | None:
        if connection_id is None:
            return None
        port = self._ports.get(connection_id)
        if port is None:
            port = client_port(native)
            if port is not None:  # through a TcpProxy of the test: the port pgbouncer sees
                port = upstream_port(port) or port
            if port is None:
                raise RuntimeError(
                    f"cannot find the client TCP port of {type(native).__name__!r}: a "
                    "pgbouncer target needs a TCP URL and an asyncpg/psycopg/aiopg connection"
                )
            self._ports[connection_id] = port
        return port

    async def connection_id(self, run: Callable[[str], Awaitable[Any]]) -> int | str | None:
        tag = f"pbid_{secrets.token_hex(6)}"
        before = str(await run("SELECT current_setting('application_name')"))
        await run(f"SELECT set_config('application_name', '{tag}', false)")
        try:
            rows = await self._clients()
        finally:
            quoted = before.replace("'", "''")
            await run(f"SELECT set_config('application_name', '{quoted}', false)")
        ports = [int(str(r["port"])) for r in rows if r.get("application_name") == tag]
        if len(ports) != 1:
            raise AssertionError(f"pgbouncer shows {len(ports)} clients tagged {tag!r}")
        return ports[0]

    async def alive(self, ids: Iterable[int | str | None]) -> set[int]:
        ports = {int(str(r["port"])) for r in await self._clients()}
        return {int(i) for i in ids if i is not None and int(i) in ports}

    async def kill(self, connection_id: int | str) -> None:
        raise NotImplementedError(NO_KILL)

    async def in_transaction(self, connection_id: int | str) -> bool:
        """Whether that client holds a server connection: in transaction pooling a client is
        linked to one only while a transaction (or a statement) runs."""
        for r in await self._clients():
            if int(str(r["port"])) == int(connection_id):
                return bool(r.get("link"))
        return False

    async def count_role_connections(self, role: str) -> int:
        """The pool's connections: pgbouncer clients logged in as ``role``."""
        return sum(1 for r in await self._clients() if r.get("user") == role)

    async def count_role_servers(self, role: str) -> int:
        """pgbouncer's server connections to PostgreSQL for ``role``."""
        return sum(1 for r in await self.show("SERVERS") if r.get("user") == role)


async def _simple_query(host: str, port: int, user: str, sql: str) -> list[dict[str, str | None]]:
    """Run ``sql`` on pgbouncer's admin console by the simple query protocol (trust auth)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        params = b"".join(
            k.encode() + b"\0" + v.encode() + b"\0"
            for k, v in (("user", user), ("database", "pgbouncer"))
        )
        body = struct.pack("!i", 196608) + params + b"\0"
        writer.write(struct.pack("!i", len(body) + 4) + body)
        await _until_ready(reader)
        query = sql.encode() + b"\0"
        writer.write(b"Q" + struct.pack("!i", len(query) + 4) + query)
        rows: list[dict[str, str | None]] = []
        names: list[str] = []
        while True:
            kind, payload = await _message(reader)
            if kind == b"T":
                names = _row_description(payload)
            elif kind == b"D":
                rows.append(dict(zip(names, _data_row(payload), strict=True)))
            elif kind == b"E":
                raise RuntimeError(f"pgbouncer admin error: {_error_text(payload)}")
            elif kind == b"Z":
                return rows
    finally:
        writer.write(b"X\0\0\0\4")
        writer.close()
