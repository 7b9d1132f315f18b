"""Leak tracking: report connections held longer than ``leak_timeout``.

With ``leak_timeout`` set, every checkout records the formatted stack of the acquiring
code; a connection held longer than ``leak_timeout`` seconds is reported ONCE (a warning on
the ``poolbridge.leaks`` logger and the ``on_leak`` hook, whose event carries
``acquire_stack``). ``report_open()`` (at pool close) reports every connection still out.
With ``leak_timeout=None`` :meth:`LeakTracker.checkout` returns None without capturing
anything, and the engine does not even call it: zero cost.
"""

from __future__ import annotations

import logging
import os
import traceback
from time import monotonic
from typing import Any

from poolbridge.config.model import PoolConfig
from poolbridge.pool.hooks import ConnectionEvent, HookRunner

__all__ = ["LeakTracker", "Lease"]

logger = logging.getLogger("poolbridge.leaks")

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: frames in these folders are the pool's own machinery (the engine, a pool's getconn, an
#: adapter's acquire, this module), never the code that acquired
_POOL_DIRS = tuple(
    os.path.join(_PACKAGE_DIR, layer) + os.sep
    for layer in ("engine", "pool", "drivers", "adapters")
)


def _acquiring_stack() -> str:
    """The current stack without the pool's own innermost frames: the user's code is what
    matters. Dropped by file, not counted: a compiled engine (mypyc) has no Python frames."""
    frames = traceback.extract_stack(limit=24)
    while frames and frames[-1].filename.startswith(_POOL_DIRS):
        frames.pop()
    return "".join(traceback.format_list(frames))


class Lease:
    """One checkout being watched: who acquired what, and when."""

    __slots__ = ("age", "conn", "connection_id", "reported", "since", "stack")

    def __init__(self, conn: Any, connection_id: int | str | None, age: float, stack: str) -> None:
        self.conn = conn
        self.connection_id = connection_id
        self.age = age
        self.since = monotonic()
        self.stack = stack
        self.reported = False


class LeakTracker:
    """Watches checked-out connections for one pool (see the module docstring)."""

    def __init__(self, config: PoolConfig, hooks: HookRunner, adapter: str) -> None:
        self.timeout = config.leak_timeout
        self.pool_name = config.name
        self.adapter = adapter
        self.hooks = hooks
        self.reported = 0
        self._leases: dict[int, Lease] = {}

    def checkout(
        self,
        conn: Any,
        connection_id: int | str | None,
        age: float,
        *,
        stack: str | None = None,
    ) -> Lease | None:
        """Start watching ``conn``; returns the token for :meth:`checkin` (None when off).

        ``stack``: the acquiring stack when the caller captured it itself (e.g. from inside
        SQLAlchemy's greenlet, where the current stack does not reach the user's code).
        """
        if self.timeout is None:
            return None
        if stack is None:
            stack = _acquiring_stack()
        lease = Lease(conn, connection_id, age, stack)
        self._leases[id(lease)] = lease
        return lease

    def checkin(self, token: Lease | None) -> None:
        """Stop watching the checkout ``token`` (a no-op for None)."""
        if token is not None:
            self._leases.pop(id(token), None)

    @property
    def open_count(self) -> int:
        return len(self._leases)

    async def check(self, now: float | None = None) -> int:
        """Report every lease held longer than ``leak_timeout`` not reported yet; count them."""
        if self.timeout is None or not self._leases:
            return 0
        now = monotonic() if now is None else now
        found = [
            lease
            for lease in list(self._leases.values())
            if not lease.reported and now - lease.since >= self.timeout
        ]
        for lease in found:
            await self._report(lease, now, f"held longer than leak_timeout={self.timeout}s")
        return len(found)

    async def report_open(self) -> int:
        """At close: report every connection still checked out (once each); count them."""
        now = monotonic()
        leases = list(self._leases.values())
        for lease in leases:
            if not lease.reported:
                await self._report(lease, now, "still checked out when the pool closed")
        self._leases.clear()
        return len(leases)

    async def _report(self, lease: Lease, now: float, why: str) -> None:
        lease.reported = True
        self.reported += 1
        held = now - lease.since
        logger.warning(
            "pool %r: connection %s %s (held %.3f s); acquired at:\n%s",
            self.pool_name, lease.connection_id, why, held, lease.stack,
        )  # fmt: skip
        if self.hooks.has("on_leak"):
            await self.hooks.emit(
                "on_leak",
                ConnectionEvent(
                    pool=self.pool_name,
                    adapter=self.adapter,
                    connection_id=lease.connection_id,
                    age=lease.age + held,
                    held=held,
                    connection=lease.conn,
                    acquire_stack=lease.stack,
                ),
            )
