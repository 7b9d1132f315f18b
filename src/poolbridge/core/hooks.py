"""Lifecycle hooks shared by every adapter.

A hook is a sync or async callable taking one :class:`ConnectionEvent`. The semantics are
the same whichever stack is underneath:

- ``on_connect`` runs once per physical connection (and again after a full reset). If it
  fails, the connection is discarded and the acquire fails with :class:`HookError`.
- ``on_checkout`` / ``on_checkin`` run when a connection is handed out / given back.
- ``on_close`` runs when a physical connection is closed (by the pool or found dead).
- ``on_timeout`` runs when an acquire times out (``connection`` is None).
- ``on_leak`` runs when a connection is held longer than ``leak_timeout``.

Failures of any hook other than ``on_connect`` are logged and counted, never raised into
the caller and never leak a connection.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from ..errors import HookError

__all__ = ["HOOK_NAMES", "ConnectionEvent", "HookName", "HookRunner", "Hooks"]

logger = logging.getLogger("poolbridge.hooks")

HookName = Literal["on_connect", "on_checkout", "on_checkin", "on_close", "on_timeout", "on_leak"]
HOOK_NAMES: tuple[HookName, ...] = (
    "on_connect",
    "on_checkout",
    "on_checkin",
    "on_close",
    "on_timeout",
    "on_leak",
)

HookFn = Callable[["ConnectionEvent"], Awaitable[object] | object]


class ConnectionEvent(NamedTuple):
    """What a hook is told about one connection.

    ``connection_id`` is the server-side id (PostgreSQL backend pid, MySQL CONNECTION_ID(),
    a process-local counter for SQLite). ``age`` is seconds since the physical connection
    was opened; ``held`` is seconds it was checked out (set at checkin and for leaks).
    ``connection`` is the native driver connection (None for ``on_timeout``).
    ``acquire_stack`` is the formatted stack of the acquiring code (``on_leak`` only).
    """

    # A NamedTuple, not a frozen dataclass: an event is built on every hooked checkout and
    # checkin, and a frozen dataclass's __init__ costs about twice as much
    # (benchmarks/hooks_overhead.py). It is just as immutable.
    pool: str
    adapter: str
    connection_id: int | str | None
    age: float = 0.0
    held: float | None = None
    connection: Any = None
    acquire_stack: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Hooks:
    """The set of lifecycle callbacks of a pool; each one is optional."""

    on_connect: HookFn | None = None
    on_checkout: HookFn | None = None
    on_checkin: HookFn | None = None
    on_close: HookFn | None = None
    on_timeout: HookFn | None = None
    on_leak: HookFn | None = None


@dataclass(slots=True)
class HookRunner:
    """Dispatches hooks with the documented failure policy and counts failures."""

    hooks: Hooks = field(default_factory=Hooks)
    failures: dict[str, int] = field(default_factory=dict)

    def has(self, name: HookName) -> bool:
        """True when a callable is registered for ``name`` (lets callers skip building events)."""
        return getattr(self.hooks, name) is not None

    async def run_on_connect(self, event: ConnectionEvent) -> None:
        """Run ``on_connect``; a failure raises :class:`HookError` chaining the cause."""
        fn = self.hooks.on_connect
        if fn is None:
            return
        try:
            result = fn(event)
            if inspect.isawaitable(result):
                await result
        except BaseException as exc:
            if not isinstance(exc, Exception):
                raise
            self.failures["on_connect"] = self.failures.get("on_connect", 0) + 1
            raise HookError(
                f"on_connect hook failed for pool {event.pool!r} "
                f"(connection {event.connection_id}); the connection was discarded: {exc!r}"
            ) from exc

    async def emit(self, name: HookName, event: ConnectionEvent) -> None:
        """Run a non-connect hook; failures are logged and counted, never raised."""
        fn = getattr(self.hooks, name)
        if fn is None:
            return
        try:
            result = fn(event)
            if result is not None and inspect.isawaitable(result):
                await result
        except Exception:
            self.failures[name] = self.failures.get(name, 0) + 1
            logger.exception(
                "%s hook failed for pool %r (connection %s)", name, event.pool, event.connection_id
            )

    def emit_sync(self, name: HookName, event: ConnectionEvent) -> Awaitable[None] | None:
        """Run a non-connect hook from sync code.

        A sync hook runs now; an async hook's coroutine is returned so the caller can
        schedule or await it where it can (e.g. SQLAlchemy's sync pool events).
        """
        fn = getattr(self.hooks, name)
        if fn is None:
            return None
        try:
            result = fn(event)
        except Exception:
            self.failures[name] = self.failures.get(name, 0) + 1
            logger.exception(
                "%s hook failed for pool %r (connection %s)", name, event.pool, event.connection_id
            )
            return None
        if inspect.isawaitable(result):
            return self._await_logged(name, event, result)
        return None

    async def _await_logged(
        self, name: HookName, event: ConnectionEvent, awaitable: Awaitable[object]
    ) -> None:
        try:
            await awaitable
        except Exception:
            self.failures[name] = self.failures.get(name, 0) + 1
            logger.exception(
                "%s hook failed for pool %r (connection %s)", name, event.pool, event.connection_id
            )
