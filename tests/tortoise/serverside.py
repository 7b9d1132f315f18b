"""Server-side facts for the ORM adapter tests: which of a pool's connections still exist.

A pool's connections are identified by the server ids its on_connect hook recorded
(PostgreSQL backend pids, MariaDB CONNECTION_ID()s), never by user name.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from poolbridge import ConnectionEvent, Hooks
from poolbridge.testing.admin import open_admin


class Recorder:
    """Hooks that record every event (name, server id) in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def hooks(self) -> Hooks:
        def make(name: str) -> Any:
            def hook(event: ConnectionEvent) -> None:
                self.events.append((name, event.connection_id))

            return hook

        return Hooks(
            on_connect=make("on_connect"),
            on_checkout=make("on_checkout"),
            on_checkin=make("on_checkin"),
            on_close=make("on_close"),
            on_timeout=make("on_timeout"),
        )

    def ids(self, name: str = "on_connect") -> set[Any]:
        return {cid for n, cid in self.events if n == name}

    def count(self, name: str) -> int:
        return sum(1 for n, _ in self.events if n == name)


async def alive(url: str, ids: Iterable[Any]) -> set[int]:
    """The ids among ``ids`` that the server behind ``url`` (a privileged test URL) still
    lists as connected."""
    admin = await open_admin(url)
    try:
        return await admin.alive(ids)
    finally:
        await admin.close()


async def execute(url: str, sql: str) -> None:
    """Run one statement on a separate admin connection (setup / cleanup)."""
    admin = await open_admin(url)
    try:
        await admin.execute(sql)
    finally:
        await admin.close()


async def alive_after_close(url: str, ids: Iterable[Any], *, within: float = 5.0) -> set[int]:
    """The ids still connected once the server had ``within`` s to process the disconnects.

    A client's close is asynchronous on the server (the backend exits / the MariaDB thread
    handles COM_QUIT a moment later), so "gone" is polled for, never assumed; what is still
    listed after the deadline is a real leak.
    """
    import asyncio

    deadline = asyncio.get_running_loop().time() + within
    while True:
        left = await alive(url, ids)
        if not left or asyncio.get_running_loop().time() >= deadline:
            return left
        await asyncio.sleep(0.05)
