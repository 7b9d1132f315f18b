"""poolbridge's own pool engine: pure asyncio, driver-agnostic through a :class:`DriverShim`.

Why it exists: several native pools wait forever when exhausted, let a greedy task barge
ahead of waiters, have no lifetime by age, or leak connections when an acquire is wrapped in
a timeout (DESIGN.md, "The pool engine"). The engine implements every PoolConfig knob once.

How it stays fair, fast and safe:

- **FIFO hand-off.** Waiters are futures in a deque. A connection that becomes free goes
  straight to the oldest live waiter (``fut.set_result``) and never passes through the idle
  list, so a task that releases and re-acquires at once queues behind the waiters.
- **No locks.** Single-threaded asyncio needs none for bookkeeping: every state change
  happens between awaits. Connections are opened, reset, pinged and closed by tasks that
  hold nothing, so a slow connect never blocks checkout/checkin of other connections.
- **Hard max_size.** ``open + opening + closing <= max_size`` at every instant.
- **Cancellation.** A cancelled waiter that was already handed a connection passes it on
  to the next waiter; a connection whose reset, ping or hook was interrupted is terminated
  (its state is unknown) and the pool refills. Nothing is lost, nothing is handed twice.
- **Lifetime jitter.** Each connection lives ``max_lifetime * U(0.9, 1.0)`` seconds: never
  longer than ``max_lifetime``, and a batch opened together does not expire together.
  Expiry is checked at checkout, at checkin and by the maintenance task.
- **Hot path.** Acquiring an idle connection and releasing one the driver knows is idle
  cost a few attribute operations: no stack capture, no event object when no hook is
  registered, no await when nothing needs I/O.

The public methods ``getconn()``, ``putconn()``, ``discard()`` and ``acquire()`` are the
API the Tortoise and peewee-async adapters build on (docs/internals.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import weakref
from collections import deque
from collections.abc import Awaitable
from contextlib import AbstractAsyncContextManager
from time import monotonic
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

from ..errors import HookError, PoolClosed, PoolTimeout, TooManyRequests, WrongEventLoop
from .config import PoolConfig
from .hooks import ConnectionEvent, HookRunner
from .leaks import LeakTracker
from .retry import connect_with_retry
from .stats import StatsRecorder

__all__ = ["LIFETIME_JITTER", "DriverShim", "Engine"]

logger = logging.getLogger("poolbridge.engine")

#: a connection's lifetime is drawn from [1 - LIFETIME_JITTER, 1] x max_lifetime
LIFETIME_JITTER = 0.10

_get_running_loop = asyncio.get_running_loop
_INF = float("inf")


@runtime_checkable
class DriverShim(Protocol):
    """What the engine needs from a driver (``poolbridge.drivers.<name>`` implement it)."""

    name: str
    backend: str

    async def connect(self, config: PoolConfig, timeout: float) -> Any:
        """Open ONE native connection with every session setting of ``config`` applied."""

    async def close(self, conn: Any) -> None:
        """Close gracefully."""

    def terminate(self, conn: Any) -> None:
        """Close at once; sync; never raises."""

    async def ping(self, conn: Any) -> None:
        """Raise if the connection is dead."""

    def in_transaction(self, conn: Any) -> bool | None:
        """Transaction state known locally (no I/O); None when unknown."""

    def is_closed(self, conn: Any) -> bool:
        """True when the driver knows the connection is closed."""

    async def rollback(self, conn: Any) -> None:
        """Roll back any open or failed transaction."""

    async def full_reset(self, conn: Any) -> bool:
        """Discard all session state and re-apply the session settings; False = unsupported."""

    async def server_id(self, conn: Any) -> int | str:
        """The server-side id: backend pid / CONNECTION_ID() / a local counter."""

    def is_connection_error(self, exc: BaseException) -> bool:
        """True when ``exc`` means the connection itself is broken."""


class _Conn:
    """The engine's record of one physical connection."""

    __slots__ = (
        "broken",
        "checkout_at",
        "created",
        "expires",
        "fresh",
        "idle_since",
        "lease",
        "native",
        "server_id",
    )  # fmt: skip

    def __init__(self, native: Any, server_id: int | str | None, created: float, life: float):
        self.native = native
        self.server_id = server_id
        self.created = created
        self.expires = created + life
        self.idle_since = created
        self.checkout_at: float | None = None
        self.lease: Any = None
        self.fresh = True  # never handed out yet: pre_ping can skip it
        self.broken = False


_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for engine in list(_ENGINES):
        engine._forked = True
        engine._loop = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _Acquire(AbstractAsyncContextManager[Any]):
    """``async with engine.acquire() as conn``: getconn, then putconn (discarding the
    connection when the block raised a connection error)."""

    __slots__ = ("_conn", "_engine")

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conn: Any = None

    async def __aenter__(self) -> Any:
        self._conn = conn = await self._engine.getconn()
        return conn

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        engine = self._engine
        if exc is None:
            await engine.putconn(self._conn)
        elif engine.driver.is_connection_error(exc):
            await engine.putconn(self._conn, discard=True)
        else:
            # e.g. cancelled mid-statement: the driver's local transaction state may be
            # stale (the statement can still complete), so roll back whatever it says
            await engine.putconn(self._conn, _state_unknown=True)


class Engine:
    """A pool of native connections for one config (see the module docstring)."""

    def __init__(
        self,
        config: PoolConfig,
        driver: DriverShim,
        *,
        adapter: str,
        hooks: HookRunner,
        recorder: StatsRecorder,
    ) -> None:
        self.config = config
        self.driver = driver
        self.adapter = adapter
        self.hooks = hooks
        self.recorder = recorder
        self.name = config.name
        self.closed = False
        self._min = config.min_size
        self._max = config.max_size
        self._idle: deque[_Conn] = deque()
        self._waiters: deque[asyncio.Future[_Conn]] = deque()
        self._conns: dict[int, _Conn] = {}  # id(native) -> record, open connections only
        self._opening = 0
        self._closing = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._connects: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._forked = False
        self._maintenance: asyncio.Task[None] | None = None
        self._drained: asyncio.Event | None = None
        self._close_done: asyncio.Future[None] | None = None
        self._leaks = LeakTracker(config, hooks, adapter) if config.leak_timeout else None
        self._full_reset = config.reset == "full"
        self._pre_ping = config.pre_ping
        self._life = config.max_lifetime if config.max_lifetime is not None else _INF
        self._hook_checkout = hooks.has("on_checkout")
        self._hook_checkin = hooks.has("on_checkin")
        _ENGINES.add(self)

    # -- public API ---------------------------------------------------------------------
    async def open(self, *, wait: bool = True) -> None:
        """Bind to the running loop, start maintenance and warm up to ``min_size``.

        With ``wait`` the first ``min_size`` connections are opened now (concurrently) and a
        failure closes what was opened and raises; without it they open in the background.
        """
        if self._loop is not None:
            raise RuntimeError(f"pool {self.name!r} is already open")
        self._loop = _get_running_loop()
        self._maintenance = self._loop.create_task(self._maintain())
        if not wait:
            self._refill()
            return
        deadline = monotonic() + self.config.acquire_timeout
        self._opening += self._min
        results = await asyncio.gather(
            *(self._open_one(deadline) for _ in range(self._min)), return_exceptions=True
        )
        self._opening -= self._min
        errors = [r for r in results if isinstance(r, BaseException)]
        for r in results:
            if isinstance(r, _Conn):
                self._conns[id(r.native)] = r
                self._idle.append(r)
        if errors:
            await self.close(timeout=0)
            raise errors[0]

    def acquire(self) -> _Acquire:
        """Async context manager yielding the native connection (returned on exit)."""
        return _Acquire(self)

    async def getconn(self, timeout: float | None = None) -> Any:
        """Check out a native connection; give it back with :meth:`putconn`.

        Waits up to ``timeout`` (default ``acquire_timeout``) seconds, then raises
        PoolTimeout; raises TooManyRequests when ``max_waiting`` callers already wait and
        PoolClosed after :meth:`close`.
        """
        if self._loop is not _get_running_loop():
            self._wrong_loop()
        if self.closed:
            raise PoolClosed(f"pool {self.name!r} is closed")
        idle = self._idle
        while idle:
            c = idle.pop()
            now = monotonic()
            if now >= c.expires or self.driver.is_closed(c.native):
                self._retire(c)
                continue
            if self._pre_ping and not c.fresh and not await self._ping_ok(c):
                continue
            self._checkout(c, now, 0.0)
            if self._hook_checkout:
                await self._emit_checkout(c, now)
            return c.native
        return await self._wait(timeout)

    async def putconn(
        self, conn: Any, *, discard: bool = False, _state_unknown: bool = False
    ) -> None:
        """Give back a connection from :meth:`getconn` (``discard`` closes it instead).

        The reset policy runs here: "rollback" sends nothing when the driver knows the
        connection is idle, else rolls back; "full" resets all session state and replays
        on_connect (or replaces the connection when the driver has no full reset).
        """
        c = self._conns.get(id(conn))
        if c is None or c.checkout_at is None:
            if self.closed:
                return  # terminated by close(): nothing left to give back
            raise ValueError(f"connection {conn!r} is not checked out from pool {self.name!r}")
        now = monotonic()
        held = now - c.checkout_at
        c.checkout_at = None
        self.recorder.record_checkin(held)
        if c.lease is not None and self._leaks is not None:
            self._leaks.checkin(c.lease)
            c.lease = None
        try:
            if self._hook_checkin:
                await self.hooks.emit("on_checkin", self._event(c, now, held))
            if (discard or c.broken or self.closed or now >= c.expires
                    or self.driver.is_closed(conn)):  # fmt: skip
                self._retire(c)
            elif self._full_reset:
                await self._reset_full(c)
            elif not _state_unknown and self.driver.in_transaction(conn) is False:
                self._release(c)
            else:
                try:
                    await self.driver.rollback(conn)
                except Exception as exc:
                    logger.warning("pool %r: rollback at checkin failed: %r", self.name, exc)
                    self._retire(c, terminate=True)
                else:
                    self._release(c)
        except BaseException:
            # interrupted (cancelled) mid-reset: the connection's state is unknown
            if id(conn) in self._conns and c.checkout_at is None and c not in self._idle:
                self._retire(c, terminate=True)
            raise
        finally:
            if self._drained is not None and self.recorder.used <= 0:
                self._drained.set()

    def discard(self, conn: Any) -> None:
        """Mark a checked-out connection broken; :meth:`putconn` will close it."""
        c = self._conns.get(id(conn))
        if c is not None:
            c.broken = True

    def server_id_of(self, conn: Any) -> int | str | None:
        """The server-side id recorded when ``conn`` was opened (None if not ours)."""
        c = self._conns.get(id(conn))
        return None if c is None else c.server_id

    def server_ids(self) -> list[int | str | None]:
        """Server-side ids of every open connection (idle and checked out)."""
        return [c.server_id for c in self._conns.values()]

    @property
    def size(self) -> int:
        """Open connections plus those being opened or closed (never above max_size)."""
        return len(self._conns) + self._opening + self._closing

    @property
    def idle_count(self) -> int:
        return len(self._idle)

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def close(self, timeout: float | None = None) -> None:
        """Refuse new acquires, close idle connections, wait up to ``timeout`` seconds
        (None: without limit) for checked-out ones, then terminate the rest. Idempotent."""
        if self._close_done is not None:
            await asyncio.shield(self._close_done)
            return
        loop = self._loop or _get_running_loop()
        self._close_done = loop.create_future()
        self.closed = True
        try:
            await self._close(timeout)
        finally:
            self._close_done.set_result(None)

    # -- checkout -----------------------------------------------------------------------
    def _checkout(self, c: _Conn, now: float, waited: float) -> None:
        c.checkout_at = now
        c.fresh = False
        self.recorder.record_checkout(waited)
        if self._leaks is not None:
            c.lease = self._leaks.checkout(c.native, c.server_id, now - c.created)

    async def _emit_checkout(self, c: _Conn, now: float) -> None:
        try:
            await self.hooks.emit("on_checkout", self._event(c, now))
        except BaseException:
            self._undo_checkout(c)
            raise

    def _undo_checkout(self, c: _Conn) -> None:
        """Take back a connection whose checkout was interrupted before the caller got it."""
        c.checkout_at = None
        self.recorder.record_checkin(0.0)
        if c.lease is not None and self._leaks is not None:
            self._leaks.checkin(c.lease)
            c.lease = None
        self._release(c)

    async def _ping_ok(self, c: _Conn) -> bool:
        """pre_ping: True when alive; a dead connection is retired (and refilled)."""
        try:
            await self.driver.ping(c.native)
        except Exception as exc:
            logger.info("pool %r: pre-ping failed for %s: %r", self.name, c.server_id, exc)
            self._retire(c, terminate=True)
            return False
        except BaseException:
            self._retire(c, terminate=True)
            raise
        return True

    async def _wait(self, timeout: float | None) -> Any:
        waiters = self._waiters
        maxw = self.config.max_waiting
        if maxw and len(waiters) >= maxw:
            self.recorder.record_refused()
            raise TooManyRequests(
                f"pool {self.name!r}: {len(waiters)} callers already wait (max_waiting={maxw})"
            )
        loop = self._loop
        assert loop is not None
        if timeout is None:
            timeout = self.config.acquire_timeout
        start = monotonic()
        deadline = start + timeout
        while True:
            fut: asyncio.Future[_Conn] = loop.create_future()
            waiters.append(fut)
            if self._opening < len(waiters) and self.size < self._max:
                self._grow(deadline)
            handle = loop.call_later(deadline - monotonic(), self._expire, fut)
            self.recorder.pending += 1
            try:
                c = await fut
            except BaseException as exc:
                if fut.done() and not fut.cancelled() and fut.exception() is None:
                    self._release(fut.result())  # handed to us, but we were cancelled
                else:
                    with contextlib.suppress(ValueError):
                        waiters.remove(fut)
                if isinstance(exc, PoolTimeout):
                    self.recorder.record_timeout()
                    if self.hooks.has("on_timeout"):
                        await self.hooks.emit(
                            "on_timeout", ConnectionEvent(self.name, self.adapter, None)
                        )
                raise
            finally:
                handle.cancel()
                self.recorder.pending -= 1
            now = monotonic()
            if now >= c.expires:
                self._retire(c)
                continue
            if self._pre_ping and not c.fresh and not await self._ping_ok(c):
                continue
            self._checkout(c, now, now - start)
            if self._hook_checkout:
                await self._emit_checkout(c, now)
            return c.native

    def _expire(self, fut: asyncio.Future[_Conn]) -> None:
        if not fut.done():
            error = PoolTimeout(self.diagnostics())  # before removing: count this waiter
            with contextlib.suppress(ValueError):
                self._waiters.remove(fut)
            fut.set_exception(error)

    def diagnostics(self) -> str:
        """A one-line account of the pool's state, for PoolTimeout and logs."""
        now = monotonic()
        held = sorted(
            (now - c.checkout_at for c in self._conns.values() if c.checkout_at is not None),
            reverse=True,
        )
        longest = ", ".join(f"{h:.2f}s" for h in held[:3]) or "none"
        return (
            f"pool {self.name!r} ({self.adapter}) timed out after "
            f"acquire_timeout={self.config.acquire_timeout}s: max_size={self._max}, "
            f"in use={len(held)}, idle={len(self._idle)}, opening={self._opening}, "
            f"waiting={len(self._waiters)}, longest held={longest}"
        )

    # -- checkin ------------------------------------------------------------------------
    def _release(self, c: _Conn) -> None:
        """Hand ``c`` to the oldest live waiter, else make it idle."""
        if self.closed:
            self._retire(c)
            return
        waiters = self._waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(c)
                return
        c.idle_since = monotonic()
        self._idle.append(c)

    async def _reset_full(self, c: _Conn) -> None:
        try:
            supported = await self.driver.full_reset(c.native)
        except Exception as exc:
            logger.warning("pool %r: full reset failed: %r", self.name, exc)
            self._retire(c, terminate=True)
            return
        if not supported:
            self._retire(c)
            return
        if self.hooks.has("on_connect"):
            try:
                await self.hooks.run_on_connect(self._event(c, monotonic()))
            except HookError as exc:
                logger.warning("pool %r: %s", self.name, exc)
                self._retire(c, terminate=True)
                return
        self._release(c)

    # -- opening ------------------------------------------------------------------------
    def _grow(self, deadline: float) -> None:
        """Open connections for waiters that no connection in flight will serve."""
        need = len(self._waiters) - self._opening
        room = self._max - self.size
        for _ in range(min(need, room)):
            self._spawn_connect(deadline)

    def _refill(self) -> None:
        """Open connections in the background until min_size are open (or opening)."""
        if self.closed or self._loop is None:
            return
        deadline = monotonic() + self.config.acquire_timeout
        for _ in range(self._min - self.size):
            self._spawn_connect(deadline)

    def _spawn_connect(self, deadline: float) -> None:
        assert self._loop is not None
        self._opening += 1
        task = self._loop.create_task(self._connect_task(deadline))
        self._track(task)
        self._connects.add(task)
        task.add_done_callback(self._connects.discard)

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect_task(self, deadline: float) -> None:
        try:
            c = await self._open_one(deadline)
        except asyncio.CancelledError:
            self._opening -= 1
            raise
        except Exception as exc:
            self._opening -= 1
            logger.warning("pool %r: could not open a connection: %r", self.name, exc)
            # a failing server must never wedge waiters: the oldest one gets the error
            waiters = self._waiters
            while waiters:
                fut = waiters.popleft()
                if not fut.done():
                    fut.set_exception(exc)
                    break
            if waiters and not self.closed:
                self._grow(monotonic() + self.config.acquire_timeout)
            return
        self._opening -= 1
        self._conns[id(c.native)] = c
        self._release(c)

    async def _open_one(self, deadline: float) -> _Conn:
        """Open one connection (with retry), record its server id, run on_connect."""
        config = self.config
        driver = self.driver
        t0 = monotonic()

        def attempt(timeout: float) -> Awaitable[Any]:
            return driver.connect(config, timeout)

        native = await connect_with_retry(
            attempt,
            policy=config.retry,
            connect_timeout=config.connect_timeout,
            deadline=deadline,
            recorder=self.recorder,
            pool_name=self.name,
        )
        created = monotonic()
        self.recorder.record_created(created - t0)
        try:
            server_id = await driver.server_id(native)
            life = self._life * (1.0 - random.uniform(0.0, LIFETIME_JITTER))
            c = _Conn(native, server_id, created, life)
            if self.hooks.has("on_connect"):
                await self.hooks.run_on_connect(self._event(c, monotonic()))
        except BaseException:
            driver.terminate(native)
            self.recorder.record_closed()
            raise
        if self.closed:
            driver.terminate(native)
            self.recorder.record_closed()
            raise PoolClosed(f"pool {self.name!r} closed while connecting")
        return c

    # -- closing ------------------------------------------------------------------------
    def _retire(self, c: _Conn, *, terminate: bool = False) -> None:
        """Forget ``c`` now; close it (in the background unless ``terminate``) and refill."""
        if self._conns.pop(id(c.native), None) is None:
            return
        was_used = c.checkout_at is not None
        if terminate or self._loop is None or self._loop.is_closed():
            self.driver.terminate(c.native)
            self.recorder.record_closed(was_used=was_used)
            if self.hooks.has("on_close") and self._loop is not None:
                self._track(self._loop.create_task(self._emit_close(c)))
            self._refill()
            return
        self._closing += 1
        self._track(self._loop.create_task(self._close_conn(c, was_used)))

    async def _emit_close(self, c: _Conn) -> None:
        await self.hooks.emit("on_close", self._event(c, monotonic()))

    async def _close_conn(self, c: _Conn, was_used: bool) -> None:
        try:
            if self.hooks.has("on_close"):
                await self._emit_close(c)
            try:
                async with asyncio.timeout(self.config.connect_timeout):
                    await self.driver.close(c.native)
            except BaseException:
                self.driver.terminate(c.native)
                raise
        except Exception as exc:
            logger.info("pool %r: closing connection %s failed: %r", self.name, c.server_id, exc)
        finally:
            self._closing -= 1
            self.recorder.record_closed(was_used=was_used)
            self._refill()

    async def _close(self, timeout: float | None) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_exception(PoolClosed(f"pool {self.name!r} was closed"))
        if self._maintenance is not None:
            self._maintenance.cancel()
        for task in list(self._connects):
            task.cancel()
        while self._idle:
            self._retire(self._idle.popleft())
        if self.recorder.used > 0 and timeout != 0:
            self._drained = asyncio.Event()
            try:
                async with asyncio.timeout(timeout):
                    await self._drained.wait()
            except TimeoutError:
                pass
        out = [c for c in self._conns.values() if c.checkout_at is not None]
        if out:
            logger.warning(
                "pool %r: terminating %d connection(s) still checked out at close: %s",
                self.name, len(out), ", ".join(str(c.server_id) for c in out),
            )  # fmt: skip
        if self._leaks is not None:
            await self._leaks.report_open()
        for c in out:
            self._retire(c, terminate=True)
        for c in list(self._conns.values()):
            self._retire(c, terminate=True)
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        if tasks:
            await asyncio.wait(tasks, timeout=self.config.connect_timeout)

    # -- maintenance --------------------------------------------------------------------
    def _maintenance_interval(self) -> float:
        knobs = [
            k
            for k in (self.config.max_idle, self.config.max_lifetime, self.config.leak_timeout)
            if k is not None
        ]
        return max(0.02, min(1.0, min(knobs, default=1.0) / 4))

    async def _maintain(self) -> None:
        """Every interval: expire by age, reap idle above min_size, report leaks, refill."""
        interval = self._maintenance_interval()
        while not self.closed:
            await asyncio.sleep(interval)
            try:
                await self._maintain_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("pool %r: maintenance failed", self.name)

    async def _maintain_once(self) -> None:
        now = monotonic()
        max_idle = self.config.max_idle
        keep: deque[_Conn] = deque()
        above = len(self._conns) - self._min
        is_closed = self.driver.is_closed
        for c in self._idle:  # oldest idle first; a connection the server closed goes too
            if now >= c.expires or is_closed(c.native) or (
                max_idle is not None and above > 0 and now - c.idle_since >= max_idle
            ):
                self._retire(c)
                above -= 1
            else:
                keep.append(c)
        if len(keep) != len(self._idle):
            self._idle.clear()  # in place: getconn() may hold a reference across an await
            self._idle.extend(keep)
        if self._leaks is not None:
            await self._leaks.check(now)
        self._refill()

    # -- helpers ------------------------------------------------------------------------
    def _event(self, c: _Conn, now: float, held: float | None = None) -> ConnectionEvent:
        return ConnectionEvent(
            pool=self.name,
            adapter=self.adapter,
            connection_id=c.server_id,
            age=now - c.created,
            held=held,
            connection=c.native,
        )

    def _wrong_loop(self) -> None:
        if self._forked:
            raise WrongEventLoop(
                f"pool {self.name!r} was opened in another process: after os.fork() open a "
                "new pool in the child (connections cannot be shared across processes)"
            )
        if self._loop is None:
            raise RuntimeError(f"pool {self.name!r} is not open: await engine.open() first")
        raise WrongEventLoop(
            f"pool {self.name!r} belongs to another event loop: a pool is bound to the loop "
            "it was opened in; open one pool per loop (e.g. per asyncio.run() or thread)"
        )

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return (
            f"<Engine {self.name!r} {self.driver.name} {state} size={self.size} "
            f"idle={len(self._idle)} waiting={len(self._waiters)}>"
        )
