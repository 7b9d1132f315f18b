"""poolbridge's own pool engine: pure asyncio, driver-agnostic through a :class:`DriverShim`.

Why it exists: several native pools wait forever when exhausted, let a greedy task barge
ahead of waiters, have no lifetime by age, or leak connections when an acquire is wrapped in
a timeout (docs/internals.md, "Pool engine API"). The engine implements every PoolConfig knob once.

How it stays fair, fast and safe:

- **FIFO hand-off.** Callers wait in the pool core's waiter queue
  (:class:`poolbridge.pool.waiters.WaiterQueue`): a connection that becomes free goes
  straight to the oldest live waiter and never passes through the idle list, so a task
  that releases and re-acquires at once queues behind the waiters; one timer per pool
  bounds every wait.
- **No locks.** Single-threaded asyncio needs none for bookkeeping: every state change
  happens between awaits. Connections are opened, reset, pinged and closed by tasks that
  hold nothing, so a slow connect never blocks checkout/checkin of other connections.
- **Hard max_size.** ``open + opening + closing <= max_size`` at every instant.
- **Cancellation.** A cancelled waiter that was already handed a connection passes it on
  to the next waiter; a connection whose reset, ping or hook was interrupted is terminated
  (its state is unknown) and the pool refills. Nothing is lost, nothing is handed twice.
- **Lifetime jitter.** Each connection lives ``max_lifetime * U(0.9, 1.0)`` seconds
  (:mod:`poolbridge.pool.lifetime`): never longer than ``max_lifetime``, and a batch opened
  together does not expire together. Expiry is checked at checkout, at checkin and by the
  maintenance task.
- **Hot path.** Acquiring an idle connection and releasing one the driver knows is idle
  cost a few attribute operations: no stack capture, no event object when no hook is
  registered, no await when nothing needs I/O.
- **Waiter path.** Under contention every checkout waits (with FIFO hand-off a releasing
  task queues behind the waiters), so a caller that finds no idle connection waits in one
  coroutine (:meth:`Engine._queued`) that queues, awaits the hand-off and checks out. The
  woken waiter asks the driver's ``is_closed()`` again: the checkin's check
  (``reusable()``) does not look at the transport for every driver (asyncmy, aiomysql), and
  the I/O callbacks of the rest of the releaser's loop iteration run before the waiter
  wakes, so a connection the server closed in between is retired before anyone uses it.

The public methods ``getconn()``, ``putconn()``, ``discard()`` and ``acquire()`` are the
API the Tortoise and peewee-async adapters build on (docs/internals.md).
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left as _bisect_left
from collections.abc import Awaitable
from contextlib import AbstractAsyncContextManager
from threading import get_ident
from time import monotonic
from types import TracebackType
from typing import Any, Final

from poolbridge.engine.lifecycle import LIFETIME_JITTER, ConnRecord, DriverShim, EngineCore, logger
from poolbridge.errors import HookError, PoolClosed, PoolTimeout
from poolbridge.pool.connect_error import open_error
from poolbridge.pool.diagnostics import pool_timeout_message
from poolbridge.pool.hooks import ConnectionEvent
from poolbridge.pool.stats import BUCKETS
from poolbridge.pool.waiters import WaitExpired

# The hot path's module constants, bound Final: the compiled build reads them from C
# statics instead of looking each up in the module's globals per use (~150 instructions
# each). Tests patch ``_get_running_loop`` (the sure loop check), so it stays a global.
_clock: Final = monotonic
_thread_ident: Final = get_ident
_bucket_of: Final = _bisect_left
_BUCKETS: Final = BUCKETS
_FIRST_BUCKET: Final = BUCKETS[0]

__all__ = ["LIFETIME_JITTER", "DriverShim", "Engine"]

_get_running_loop = asyncio.get_running_loop


class _Acquire(AbstractAsyncContextManager[Any]):
    """``async with engine.acquire() as conn``: a checkout, then a checkin (discarding the
    connection when the block raised a connection error).

    ``__aenter__``/``__aexit__`` are plain methods returning an awaitable: in the common
    case (an idle connection, a plain checkin) they do the whole work synchronously and
    return a future that is already done (the record's ``handed`` future, the engine's
    ``_done``), which ``async with`` awaits without building a coroutine. A checkout that
    finds no idle connection returns one coroutine (:meth:`Engine._queued`: it waits and
    stores the record here); a checkin that needs I/O returns :meth:`Engine.putconn`'s.
    The record of the connection is kept, so the checkin needs no lookup. Built without
    ``__init__`` (see :meth:`Engine.acquire`): an instance is made per ``async with``.
    """

    __slots__ = ("_engine", "_rec")

    _engine: Engine
    _rec: ConnRecord

    def __aenter__(self) -> Awaitable[Any]:  # type: ignore[override]
        engine = self._engine
        # no idle connection (every acquire at 100 tasks on 10 connections): no call to
        # _take_idle, and one coroutine waits, checks out and keeps the record
        c = engine._take_idle() if engine._idle else None
        if c is None:
            return engine._queued(self, None)
        self._rec = c
        emit = engine._emit_checkout
        if emit is not None:
            # a sync hook runs here and now, without a coroutine; only an async one awaits
            pending = emit(c.server_id, c.checkout_at - c.created, None, c.native)  # type: ignore[operator]
            if pending is not None:
                return engine._finish_checkout(c, pending)
        return c.handed

    def __aexit__(  # type: ignore[override]
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Awaitable[None]:
        engine = self._engine
        c = self._rec
        if exc is None:
            done = engine._give_back(c)
            return engine.putconn(c.native) if done is None else done
        if engine.driver.is_connection_error(exc):
            return engine.putconn(c.native, discard=True)
        # e.g. cancelled mid-statement: the driver's local transaction state may be
        # stale (the statement can still complete), so roll back whatever it says
        return engine.putconn(c.native, _state_unknown=True)


class Engine(EngineCore):
    """A pool of native connections for one config (see the module docstring)."""

    # -- public API ---------------------------------------------------------------------
    async def open(self, *, wait: bool = True) -> None:
        """Bind to the running loop, schedule maintenance and warm up to ``min_size``.

        With ``wait`` the first ``min_size`` connections are opened now (concurrently) and a
        failure closes what was opened and raises; without it they open in the background.
        """
        if self._loop is not None:
            raise RuntimeError(f"pool {self.name!r} is already open")
        self._loop = self._guard.bind()
        self._loop_thread = get_ident()  # the loop's thread, for the hot path's loop check
        self._done = self._loop.create_future()
        self._done.set_result(None)
        self._start_maintenance()  # pool/ticker.py: no timer in the loop while open
        if not wait:
            self._refill()
            return
        deadline = monotonic() + self.config.acquire_timeout
        failed_before = self.recorder.errors
        self._opening += self._min
        results = await asyncio.gather(
            *(self._open_one(deadline) for _ in range(self._min)), return_exceptions=True
        )
        self._opening -= self._min
        errors = [r for r in results if isinstance(r, BaseException)]
        for r in results:
            if isinstance(r, ConnRecord):
                self._conns[id(r.native)] = r
                self._idle.append(r)
        if errors:
            await self.close(timeout=0)
            # one error type for "cannot reach the server" on every pool (ConnectError)
            is_retryable = getattr(self.driver, "is_retryable_connect_error", None)
            raise open_error(
                self.config,
                errors[0],
                attempts=self.recorder.errors - failed_before,
                retryable=is_retryable is None or is_retryable(errors[0]),
            )

    def acquire(self) -> _Acquire:
        """Async context manager yielding the native connection (returned on exit)."""
        cm = _Acquire()  # no __init__: two slot stores cost half a Python __init__ call
        cm._engine = self
        return cm

    async def getconn(self, timeout: float | None = None) -> Any:
        """Check out a native connection; give it back with :meth:`putconn`.

        Waits up to ``timeout`` (default ``acquire_timeout``) seconds, then raises
        PoolTimeout; raises TooManyRequests when ``max_waiting`` callers already wait and
        PoolClosed after :meth:`close`.
        """
        c = self._take_idle() if self._idle else None
        if c is None:
            return await self._queued(None, timeout)
        if self._emit_checkout is not None:
            pending = self._emit_checkout(c.server_id, c.checkout_at - c.created, None, c.native)  # type: ignore[operator]
            if pending is not None:
                await self._finish_checkout(c, pending)
        return c.native

    async def _queued(self, cm: _Acquire | None, timeout: float | None) -> Any:
        """The checkout when :meth:`_take_idle` declined, in one coroutine: the waiter path.

        With no idle connection, on the pool's loop, open, and a plain checkout (no
        pre-ping, no leak tracking), it queues, opens a connection when none is coming,
        awaits the hand-off and checks the connection out here (the waiter of ``async
        with`` keeps its record in ``cm``): at 100 tasks on 10 connections every acquire
        comes this way, and each coroutine frame in the chain costs on the call and again
        on the wake-up. Anything else (idle connections to retire, another loop, a closed
        pool, pre_ping or leaks) takes the general :meth:`_get`. Returns the native
        connection."""
        loop = self._guard.loop  # the cheap loop check of _take_idle; _get does the sure one
        if (
            self._idle
            or not self._plain_checkout
            or self.closed
            or loop is None
            or _thread_ident() != self._loop_thread
            or not loop.is_running()
        ):
            c = await self._get(timeout)
            if cm is not None:
                cm._rec = c
            return c.native
        queue = self._queue
        start = _clock()
        deadline = start + (self.config.acquire_timeout if timeout is None else timeout)
        fut = queue.join(loop, deadline)  # max_waiting: TooManyRequests
        while True:
            # open a connection when none in flight will serve this waiter (at max_size,
            # the common case under contention, the first test answers)
            opening = self._opening
            if len(self._conns) + opening + self._closing < self._max and opening < len(
                self._waiters
            ):
                self._grow(deadline)
            try:
                c = await fut
            except WaitExpired:
                raise await self._expired(fut) from None
            except BaseException:
                queue.abandon(fut)  # a connection handed to us meanwhile goes on
                raise
            now = _clock()
            # the checks of an idle checkout: the server may have closed it since
            if now < c.expires and not self._is_closed(c.native):
                break
            self._retire(c)
            fut = queue.join(loop, deadline, admitted=True)  # queue again (not re-counted)
        # checked out: the fast path's bookkeeping (``fresh`` only matters to pre_ping)
        c.checkout_at = now
        waited = now - start
        rec = self.recorder
        if rec._listeners:
            rec.record_checkout(waited)
        else:
            rec.used += 1
            h = rec.wait_time
            if waited <= _FIRST_BUCKET:
                h.first += 1
            else:
                h.counts[_bucket_of(_BUCKETS, waited)] += 1
            h.sum += waited
        if cm is not None:
            cm._rec = c
        emit = self._emit_checkout
        if emit is not None:
            pending = emit(c.server_id, now - c.created, None, c.native)
            if pending is not None:
                await self._finish_checkout(c, pending)  # interrupted: the checkout is undone
        return c.native

    async def _expired(self, fut: asyncio.Future[ConnRecord]) -> PoolTimeout:
        """A wait's deadline passed: the waiter leaves and on_timeout runs; returns the
        PoolTimeout to raise."""
        error = PoolTimeout(self.diagnostics())  # before leaving: count this waiter
        self._queue.abandon(fut)
        self.recorder.record_timeout()
        if self.hooks.has("on_timeout"):
            await self.hooks.emit("on_timeout", ConnectionEvent(self.name, self.adapter, None))
        return error

    async def _get(self, timeout: float | None) -> ConnRecord:
        """The general checkout (after :meth:`_take_idle` declined): the loop and closed
        checks, idle connections that need retiring or a pre-ping, the wait, the hook."""
        loop = self._guard.loop  # the cheap check first (see _take_idle), then the sure one
        if (
            loop is None or get_ident() != self._loop_thread or not loop.is_running()
        ) and loop is not _get_running_loop():  # other loop, or a forked child
            raise self._guard.error()
        if self.closed:
            raise PoolClosed(f"pool {self.name!r} is closed")
        idle = self._idle
        deadline: float | None = None  # set by the first pre-ping: it spends wait time
        while idle:
            c = idle.pop()
            now = monotonic()
            if now >= c.expires or self.driver.is_closed(c.native):
                self._retire(c)
                continue
            if self._pre_ping and not c.fresh:
                if deadline is None:
                    deadline = now + (self.config.acquire_timeout if timeout is None else timeout)
                if not await self._ping_ok(c, deadline):
                    continue
            self._checkout(c, now, 0.0)
            break
        else:
            c = await self._wait(timeout, deadline)  # checked out by _wait
            now = c.checkout_at  # type: ignore[assignment]  # set by the checkout
        emit = self._emit_checkout
        if emit is not None:
            pending = emit(c.server_id, now - c.created, None, c.native)
            if pending is not None:
                await self._finish_checkout(c, pending)
        return c

    async def _finish_checkout(self, c: ConnRecord, pending: Awaitable[None]) -> Any:
        """Await an async on_checkout hook; interrupted (e.g. cancelled), the checkout is
        undone: nobody got the connection."""
        try:
            await pending
        except BaseException:
            self._undo_checkout(c)
            raise
        return c.native

    async def putconn(
        self, conn: Any, *, discard: bool = False, _state_unknown: bool = False
    ) -> None:
        """Give back a connection from :meth:`getconn` (``discard`` closes it instead).

        The reset policy runs here: "rollback" sends nothing when the driver knows the
        connection is idle, else rolls back; "full" resets all session state and replays
        on_connect (or replaces the connection when the driver has no full reset). Then
        on_checkin runs, before anyone else can get the connection: what the hook sets or
        undoes is not rolled back with the caller's transaction.
        """
        c = self._conns.get(id(conn))
        if c is not None and not (discard or _state_unknown):
            done = self._give_back(c)
            if done is not None:
                if done is not self._done:
                    await done  # an async on_checkin hook
                return
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
            keep: bool | None  # None: retire after the hook; False: retired already
            if (discard or c.broken or self.closed or now >= c.expires
                    or self.driver.is_closed(conn)):  # fmt: skip
                keep = None
            elif self._full_reset:
                keep = await self._reset_full(c)
            elif not _state_unknown and self.driver.in_transaction(conn) is False:
                keep = True
            else:
                keep = await self._rollback(c)
            emit = self._emit_checkin
            if emit is not None:
                # a sync hook runs here and now; only an async one costs an await
                pending = emit(c.server_id, now - c.created, held, c.native)
                if pending is not None:
                    await pending
            if keep:
                self._release(c)
            elif keep is None:
                self._retire(c)
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

    def idle_natives(self) -> list[Any]:
        """The idle native connections (a snapshot, for introspection)."""
        return [c.native for c in self._idle]

    @property
    def idle_count(self) -> int:
        return len(self._idle)

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def close(self, timeout: float | None = None) -> None:
        """Refuse new acquires, close idle connections, wait up to ``timeout`` seconds
        (None: ``acquire_timeout``) for checked-out ones, then terminate the rest. Idempotent."""
        if self._close_done is not None:
            await asyncio.shield(self._close_done)
            return
        if self._guard.forked:
            # a forked child: the sockets are the parent's; a word on them (a Terminate
            # message) would break the parent's connections. Forget them silently.
            self.closed = True
            return
        loop = self._loop or _get_running_loop()
        self._close_done = loop.create_future()
        self.closed = True
        try:
            await self._close(self.config.acquire_timeout if timeout is None else timeout)
        finally:
            self._close_done.set_result(None)

    # -- the hot path -------------------------------------------------------------------
    # ``async with acquire()`` and getconn()/putconn() try these two synchronous methods
    # first. They do the whole work of the common case (an idle connection that needs no
    # I/O, no pre-ping and no leak capture at checkout; a connection the driver knows is
    # idle and open at checkin, with no reset beyond that) with no coroutine frame and no
    # method call beyond the driver's local state check; anything else returns None
    # having changed nothing, and the general path runs. A sync hook runs inline (the
    # callers call on_checkout; _give_back calls on_checkin before the hand-off).
    def _take_idle(self) -> ConnRecord | None:
        """Check out the most recently used idle connection if nothing needs an await;
        its record (checked out, counted), else None (nothing changed)."""
        idle = self._idle
        if not idle or not self._plain_checkout or self.closed:
            return None
        # Our loop is running and this is its thread, so it is the running loop (one loop
        # runs per thread): asyncio.get_running_loop() would say the same at the price of a
        # getpid() system call per call (its fork check; asyncio._get_running_loop() makes
        # the same call on Python 3.11), which on a sandboxed host costs more than the whole
        # checkout. A forked child has no loop here (LoopGuard).
        loop = self._guard.loop
        if loop is None or _thread_ident() != self._loop_thread or not loop.is_running():
            return None  # _get() checks with get_running_loop() and raises
        c = idle[-1]
        now = _clock()
        if now >= c.expires or self._is_closed(c.native):
            return None  # _get() retires it
        idle.pop()
        c.checkout_at = now  # (``fresh`` only matters to pre_ping, which is off here)
        rec = self.recorder
        if rec._listeners:
            rec.record_checkout(0.0)
        else:
            rec.used += 1
            rec.wait_time.first += 1  # waited 0 s: the first bucket, the sum unchanged
        return c

    def _give_back(self, c: ConnRecord) -> Awaitable[None] | None:
        """Check in ``c`` if it stays open, is outside a transaction and no reset or leak
        tracking applies: run on_checkin, then hand it to the oldest waiter or make it
        idle. Returns something to await (``_done``, already done, unless an async
        on_checkin hook is pending), or None when :meth:`putconn`'s general path must run
        (nothing changed)."""
        if not self._plain_checkin or c.broken or self.closed:
            return None
        t0 = c.checkout_at
        if t0 is None:
            return None
        now = _clock()
        if now >= c.expires or not self._reusable(c.native):
            return None
        c.checkout_at = None
        held = now - t0
        rec = self.recorder
        if rec._listeners:
            rec.record_checkin(held)
        else:
            rec.used -= 1
            h = rec.use_time
            if held <= _FIRST_BUCKET:
                h.first += 1
            else:
                h.counts[_bucket_of(_BUCKETS, held)] += 1
            h.sum += held
        emit = self._emit_checkin
        if emit is not None:
            # before anyone else can get the connection; only an async hook awaits
            pending = emit(c.server_id, now - c.created, held, c.native)
            if pending is not None:
                return self._finish_checkin(c, pending)
        if self._waiters and self._queue.hand(c):  # FIFO hand-off: never through the idle list
            return self._done
        c.idle_since = now
        self._idle.append(c)
        return self._done

    async def _finish_checkin(self, c: ConnRecord, pending: Awaitable[None]) -> None:
        """Await an async on_checkin hook, then release ``c``; interrupted, the
        connection's state is unknown: it is terminated (and replaced)."""
        try:
            await pending
        except BaseException:
            self._retire(c, terminate=True)
            raise
        else:
            self._release(c)
        finally:
            if self._drained is not None and self.recorder.used <= 0:
                self._drained.set()

    # -- checkout -----------------------------------------------------------------------
    def _checkout(self, c: ConnRecord, now: float, waited: float) -> None:
        c.checkout_at = now
        c.fresh = False
        self.recorder.record_checkout(waited)
        if self._leaks is not None:
            c.lease = self._leaks.checkout(c.native, c.server_id, now - c.created)

    def _undo_checkout(self, c: ConnRecord) -> None:
        """Take back a connection whose checkout was interrupted before the caller got it."""
        c.checkout_at = None
        self.recorder.record_checkin(0.0)
        if c.lease is not None and self._leaks is not None:
            self._leaks.checkin(c.lease)
            c.lease = None
        self._release(c)

    async def _ping_ok(self, c: ConnRecord, deadline: float) -> bool:
        """pre_ping: True when alive; a dead connection is retired (and refilled).

        The ping is bounded by ``connect_timeout`` and by the caller's acquire ``deadline``:
        on a stalled link (no bytes flow, no error comes) the connection counts as dead, is
        terminated, and the caller goes on acquiring within the same deadline.
        """
        bound = max(0.0, min(self.config.connect_timeout, deadline - monotonic()))
        try:
            async with asyncio.timeout(bound):
                await self.driver.ping(c.native)
        except Exception as exc:
            logger.info("pool %r: pre-ping failed for %s: %r", self.name, c.server_id, exc)
            self._retire(c, terminate=True)
            return False
        except BaseException:
            self._retire(c, terminate=True)
            raise
        return True

    async def _wait(self, timeout: float | None, deadline: float | None = None) -> ConnRecord:
        """Queue for a connection until ``deadline`` (default: now + ``timeout``); returns
        it checked out. The queue (pool/waiters.py) hands connections over FIFO and bounds
        every wait with its one timer."""
        queue = self._queue
        loop = self._loop
        assert loop is not None
        if timeout is None:
            timeout = self.config.acquire_timeout
        start = monotonic()
        if deadline is None:
            deadline = start + timeout
        admitted = False  # max_waiting is checked once per caller
        while True:
            fut = queue.join(loop, deadline, admitted=admitted)
            admitted = True
            if self._opening < len(self._waiters) and self.size < self._max:
                self._grow(deadline)
            try:
                c = await fut
            except WaitExpired:
                raise await self._expired(fut) from None
            except BaseException:
                queue.abandon(fut)  # a connection handed to us meanwhile goes on
                raise
            now = monotonic()
            # the same checks as an idle checkout: the server may have closed it since
            if now >= c.expires or self.driver.is_closed(c.native):
                self._retire(c)
                continue
            if self._pre_ping and not c.fresh and not await self._ping_ok(c, deadline):
                continue
            self._checkout(c, now, now - start)
            return c

    def diagnostics(self) -> str:
        """A one-line account of the pool's state, for PoolTimeout and logs."""
        now = monotonic()
        held = [now - c.checkout_at for c in self._conns.values() if c.checkout_at is not None]
        return pool_timeout_message(
            self.name,
            adapter=self.adapter,
            acquire_timeout=self.config.acquire_timeout,
            max_size=self._max,
            in_use=len(held),
            idle=len(self._idle),
            opening=self._opening,
            waiting=len(self._waiters),
            held_ages=held,
        )

    # -- checkin ------------------------------------------------------------------------
    def _release(self, c: ConnRecord) -> None:
        """Hand ``c`` to the oldest live waiter, else make it idle."""
        if self.closed:
            self._retire(c)
            return
        if self._waiters and self._queue.hand(c):
            return
        c.idle_since = monotonic()
        self._idle.append(c)

    async def _rollback(self, c: ConnRecord) -> bool:
        """reset="rollback" of a connection in a transaction; False: it failed (retired)."""
        try:
            # bounded: on a stalled link the rollback would never return
            async with asyncio.timeout(self.config.connect_timeout):
                await self.driver.rollback(c.native)
        except Exception as exc:
            logger.warning("pool %r: rollback at checkin failed: %r", self.name, exc)
            self._retire(c, terminate=True)
            return False
        return True

    async def _reset_full(self, c: ConnRecord) -> bool:
        """reset="full" and the on_connect replay; False: the connection was retired."""
        try:
            # bounded: on a stalled link the reset would never return
            async with asyncio.timeout(self.config.connect_timeout):
                supported = await self.driver.full_reset(c.native)
        except Exception as exc:
            logger.warning("pool %r: full reset failed: %r", self.name, exc)
            self._retire(c, terminate=True)
            return False
        if not supported:
            self._retire(c)
            return False
        if self.hooks.has("on_connect"):
            try:
                await self.hooks.run_on_connect(self._event(c, monotonic()))
            except HookError as exc:
                logger.warning("pool %r: %s", self.name, exc)
                self._retire(c, terminate=True)
                return False
        return True

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return (
            f"<Engine {self.name!r} {self.driver.name} {state} size={self.size} "
            f"idle={len(self._idle)} waiting={len(self._waiters)}>"
        )
