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
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from poolbridge.errors import HookError

__all__ = [
    "HOOK_NAMES",
    "ConnectionEvent",
    "Emitter",
    "HookName",
    "HookRunner",
    "Hooks",
    "without_event",
]

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
    # (benchmarks/hooks_overhead.py). It is just as immutable. Hot paths build it through
    # HookRunner.emitter(), which skips the generated __new__.
    pool: str
    adapter: str
    connection_id: int | str | None
    age: float = 0.0
    held: float | None = None
    connection: Any = None
    acquire_stack: str | None = None


_tuple_new = tuple.__new__


class _WithoutEvent:
    """A hook called with no argument (see :func:`without_event`)."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[], Awaitable[object] | object]) -> None:
        self.fn = fn

    def __call__(self, event: ConnectionEvent) -> Awaitable[object] | object:
        return self.fn()  # called with an event (any other path): ignore it

    def __repr__(self) -> str:
        return f"without_event({self.fn!r})"


def without_event(fn: Callable[[], Awaitable[object] | object]) -> HookFn:
    """Register ``fn`` as a hook that is called with no argument.

    For hooks that only need to know that a checkout or checkin happened (a counter, a
    gauge): the pool then builds no :class:`ConnectionEvent` for it on the checkout and
    checkin path, which is most of what a hook costs there. ``fn`` may be sync or async,
    and fails like any hook (logged and counted, never raised). Any hook may be wrapped.
    """
    return _WithoutEvent(fn)


@dataclass(frozen=True, kw_only=True, slots=True)
class Hooks:
    """The set of lifecycle callbacks of a pool; each one is optional."""

    on_connect: HookFn | None = None
    on_checkout: HookFn | None = None
    on_checkin: HookFn | None = None
    on_close: HookFn | None = None
    on_timeout: HookFn | None = None
    on_leak: HookFn | None = None


Emitter = Callable[[int | str | None, float, "float | None", Any], "Awaitable[None] | None"]
"""``emit(connection_id, age, held, connection)``: one hook of one pool bound to the failure
policy (see :meth:`HookRunner.emitter`)."""


class HookRunner:
    """Dispatches hooks with the documented failure policy and counts failures.

    The checkout/checkin hot path is an *emitter* (:meth:`emitter`): the engine and the
    adapters build one per hook when they are created and keep it (None when the hook is
    not registered: then nothing at all happens per checkout). Calling it builds the
    event and calls a sync hook directly — no coroutine, no task, no ``inspect`` call, no
    name lookup — and returns an awaitable only when the hook returned one.
    """

    __slots__ = ("failures", "hooks")

    def __init__(self, hooks: Hooks | None = None, failures: dict[str, int] | None = None) -> None:
        self.hooks = hooks if hooks is not None else Hooks()
        self.failures: dict[str, int] = {} if failures is None else failures

    def __repr__(self) -> str:
        return f"HookRunner(hooks={self.hooks!r}, failures={self.failures!r})"

    def has(self, name: HookName) -> bool:
        """True when a callable is registered for ``name`` (lets callers skip building events)."""
        return getattr(self.hooks, name) is not None

    def emitter(self, name: HookName, *, pool: str, adapter: str) -> Emitter | None:
        """``name`` (not on_connect) bound to ``pool``/``adapter``; None when not registered.

        ``emit(connection_id, age, held, connection)`` does what ``emit_sync(name,
        ConnectionEvent(pool, adapter, connection_id, age, held, connection))`` does, at
        about a third of its cost: the event is built with ``tuple.__new__`` (the
        NamedTuple's generated ``__new__`` costs three times as much) and no method or
        attribute is looked up. Per hooked checkout that is one event and two calls.
        """
        fn = getattr(self.hooks, name)
        if fn is None:
            return None
        failed = self._failed
        settle = self._settle
        event_type = ConnectionEvent

        if isinstance(fn, _WithoutEvent):
            bare = fn.fn

            def emit_bare(
                connection_id: int | str | None, age: float, held: float | None, connection: Any
            ) -> Awaitable[None] | None:
                try:
                    result = bare()
                except Exception:
                    failed(name, event_type(pool, adapter, connection_id, age, held, connection))
                    return None
                if result is None:
                    return None  # the event is built only to report an async hook's failure
                event = event_type(pool, adapter, connection_id, age, held, connection)
                return settle(name, event, result)

            return emit_bare

        def emit(
            connection_id: int | str | None, age: float, held: float | None, connection: Any
        ) -> Awaitable[None] | None:
            event: ConnectionEvent = _tuple_new(
                event_type, (pool, adapter, connection_id, age, held, connection, None)
            )
            try:
                result = fn(event)
            except Exception:
                failed(name, event)
                return None
            return None if result is None else settle(name, event, result)

        return emit

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
        pending = self.emit_sync(name, event)
        if pending is not None:
            await pending

    def emit_sync(self, name: HookName, event: ConnectionEvent) -> Awaitable[None] | None:
        """Run a non-connect hook now; return an awaitable only if it has async work left.

        A sync hook runs to completion here and None is returned. An async hook's
        awaitable is returned wrapped, so that its failure is logged and counted like a
        sync one; the caller awaits it in place (the engine, psycopg, the SQLAlchemy
        greenlet) or runs it as a task where it cannot await (SQLAlchemy checkin).
        """
        fn = getattr(self.hooks, name)
        if fn is None:
            return None
        try:
            result = fn(event)
        except Exception:
            self._failed(name, event)
            return None
        return None if result is None else self._settle(name, event, result)

    def _settle(
        self, name: HookName, event: ConnectionEvent, result: object
    ) -> Awaitable[None] | None:
        """What a hook returned that is not None: an awaitable left to await (wrapped so
        that its failure is logged and counted), else nothing. Whether a hook is async is
        decided by what it returns, not by inspecting it up front: a sync callable that
        returns a coroutine (a lambda, a functools.partial of an async function) counts."""
        if inspect.isawaitable(result):
            return self._await_logged(name, event, result)
        return None

    def _failed(self, name: HookName, event: ConnectionEvent) -> None:
        self.failures[name] = self.failures.get(name, 0) + 1
        logger.exception(
            "%s hook failed for pool %r (connection %s)", name, event.pool, event.connection_id
        )

    async def _await_logged(
        self, name: HookName, event: ConnectionEvent, awaitable: Awaitable[object]
    ) -> None:
        try:
            await awaitable
        except Exception:
            self._failed(name, event)
