"""Detect a pool used from another event loop or a forked child process.

A pool's connections (sockets, futures, locks) belong to the event loop they were opened in,
and to the process that opened them. Used from anywhere else, drivers fail deep inside with
"attached to a different loop", hang, or — after ``os.fork()`` — two processes talk over the
same socket and corrupt each other's protocol state (sqlalchemy#5823, tortoise#1110).

Every pool binds one :class:`LoopGuard` when it opens and checks it on its acquire path.
The check is one identity comparison: ``guard.loop is asyncio.get_running_loop()``. The fork
case costs nothing there either: an ``os.register_at_fork`` hook clears ``loop`` in the child
for every live guard, so the comparison fails and :meth:`LoopGuard.error` tells why::

    if guard.loop is not _get_running_loop():
        raise guard.error()

Core module: standard library only.
"""

from __future__ import annotations

import asyncio
import os
import weakref

from poolbridge.errors import WrongEventLoop

__all__ = ["LoopGuard", "get_running_loop"]

#: re-exported so hot paths can bind it once (a module attribute lookup saved per call)
get_running_loop = asyncio.get_running_loop

_GUARDS: weakref.WeakSet[LoopGuard] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """In a forked child no pool of the parent may be used: make every check fail."""
    for guard in list(_GUARDS):
        guard.forked = True
        guard.loop = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class LoopGuard:
    """Remembers the loop and process a pool was opened in (see the module docstring)."""

    __slots__ = ("__weakref__", "forked", "loop", "name", "pid")

    def __init__(self, name: str) -> None:
        self.name = name
        self.loop: asyncio.AbstractEventLoop | None = None
        self.pid = os.getpid()
        self.forked = False

    def bind(self, loop: asyncio.AbstractEventLoop | None = None) -> asyncio.AbstractEventLoop:
        """Bind to ``loop`` (default: the running loop) and this process; returns the loop."""
        self.loop = loop if loop is not None else get_running_loop()
        self.pid = os.getpid()
        self.forked = False
        _GUARDS.add(self)
        return self.loop

    def check(self) -> None:
        """Raise WrongEventLoop unless called from the bound loop in the bound process."""
        if self.loop is not get_running_loop():
            raise self.error()

    def error(self) -> BaseException:
        """The error for a failed check: WrongEventLoop naming where the pool was opened and
        where it is used now (RuntimeError when the pool was never opened)."""
        here = os.getpid()
        try:
            current: asyncio.AbstractEventLoop | None = get_running_loop()
        except RuntimeError:
            current = None
        now = f"event loop {_loop_name(current)} of process {here}"
        if self.forked or self.pid != here:
            return WrongEventLoop(
                f"pool {self.name!r} was opened in process {self.pid}; it cannot be used from "
                f"{now} after os.fork(): connections cannot be shared across processes, open a "
                "new pool in the child (and do not close the parent's pool there)"
            )
        if self.loop is None:
            return RuntimeError(f"pool {self.name!r} is not open yet")
        return WrongEventLoop(
            f"pool {self.name!r} was opened in event loop {_loop_name(self.loop)} of process "
            f"{self.pid}; it cannot be used from another event loop ({now}): a pool is bound "
            "to the loop it was opened in, open one pool per loop (per asyncio.run() or thread)"
        )

    def __repr__(self) -> str:
        return f"<LoopGuard {self.name!r} loop={_loop_name(self.loop)} pid={self.pid}>"


def _loop_name(loop: asyncio.AbstractEventLoop | None) -> str:
    return "<none>" if loop is None else f"{type(loop).__name__}@{id(loop):#x}"
