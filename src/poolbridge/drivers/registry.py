"""Driver name -> the one place that knows that driver.

Every adapter that holds a driver connection asks the same object whether it is closed, how
to cut it and which server-side id it has: the engine's shim for asyncpg, aiopg, aiomysql,
asyncmy and aiosqlite (:mod:`poolbridge.drivers.asyncpg` ...), :class:`PsycopgNative` for
psycopg. SQLAlchemy's pool class and listeners use it, the engine holds the shim itself.
"""

from __future__ import annotations

import functools
from typing import Any, Protocol

from poolbridge.drivers.aiomysql import AiomysqlShim
from poolbridge.drivers.aiopg import AiopgShim
from poolbridge.drivers.aiosqlite import AiosqliteShim
from poolbridge.drivers.asyncmy import AsyncmyShim
from poolbridge.drivers.asyncpg import AsyncpgShim
from poolbridge.drivers.psycopg.native import PsycopgNative

__all__ = ["NativeOps", "native_ops"]


class NativeOps(Protocol):
    """The questions about a driver connection answered without a round trip."""

    name: str

    def is_closed(self, conn: Any) -> bool:
        """True when the driver knows ``conn`` is closed (by us or by the server)."""

    def sever(self, conn: Any) -> None:
        """Cut ``conn`` now, so an operation stuck on it fails with a connection error."""

    def local_server_id(self, conn: Any) -> int | str:
        """Backend pid / connection thread id / a process-local number (SQLite)."""


_KINDS: dict[str, type[Any]] = {
    "asyncpg": AsyncpgShim,
    "psycopg": PsycopgNative,
    "aiopg": AiopgShim,
    "aiomysql": AiomysqlShim,
    "asyncmy": AsyncmyShim,
    "aiosqlite": AiosqliteShim,
}


@functools.cache
def native_ops(driver: str) -> NativeOps:
    """The knowledge of ``driver`` (one shared instance per driver name)."""
    try:
        kind = _KINDS[driver]
    except KeyError:
        raise ValueError(f"unknown driver {driver!r} (known: {', '.join(_KINDS)})") from None
    ops: NativeOps = kind()
    return ops
