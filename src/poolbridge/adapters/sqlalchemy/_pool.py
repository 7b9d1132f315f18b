"""The pool class poolbridge puts inside a SQLAlchemy AsyncEngine (``poolclass=BridgePool``).

SQLAlchemy's AsyncAdaptedQueuePool starts empty, never closes idle connections, queues
callers without bound and lets a task that re-acquires in a loop barge ahead of waiters
(its asyncio.Queue hands an item to whoever calls ``get_nowait()`` first). BridgePool keeps
SQLAlchemy's record/fairy machinery (so events, recycle, reset-on-return and invalidation
behave as usual) and implements only what SQLAlchemy's own pools implement, the way
QueuePool does: ``_do_get``, ``_do_return_conn``, ``status``, ``dispose``, ``recreate``
(plus QueuePool's ``size``/``checkedin``/``checkedout``/``overflow``/``timeout`` answers).
Checkout and checkin work, the bounded pre-ping and hooks are pool event listeners
(:mod:`._events`). The queue:

- a hard cap of ``max_size`` slots; a slot is taken before a connection is opened (outside
  any lock: there is none, the pool lives on one event loop);
- FIFO hand-off through the pool core's waiter queue
  (:class:`poolbridge.pool.waiters.WaiterQueue`, shared with the engine): a returned
  connection goes straight to the first waiter's future; while anyone waits, nobody takes
  an idle connection or opens a new one ahead of them. A waiter awaits its bare future
  with ``await_``; the queue's one timer per pool enforces ``acquire_timeout`` for all of
  them (at 100 tasks on 10 connections every checkout waits);
- ``max_waiting`` (TooManyRequests at once), ``acquire_timeout`` (PoolTimeout with diagnostics,
  also a ``sqlalchemy.exc.TimeoutError`` so existing ``except`` clauses keep working;
  ``acquire_timeout=0`` fails at once when exhausted, as ``pool_timeout=0`` does);
- per-connection lifetime with jitter, idle reaping above ``min_size``, warm-up and refill
  (run by :class:`BridgeState`'s maintenance, see :mod:`._state`);
- ``dispose()`` closes the idle connections and stops the maintenance; the pool
  ``recreate()`` makes stays dormant (nothing scheduled, no refill) until first used.

``_do_get`` runs inside SQLAlchemy's greenlet, so it can wait on asyncio with ``await_``.
Every path that gives up a slot (failed connect, cancelled waiter, discarded connection)
passes it on to the first waiter or frees it: cancellation never leaks a slot.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from time import monotonic
from typing import TYPE_CHECKING, Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import ConnectionPoolEntry, Pool
from sqlalchemy.util import await_
from sqlalchemy.util.concurrency import greenlet_spawn, in_greenlet

from poolbridge.adapters.sqlalchemy._state import CONNECT_DEADLINE
from poolbridge.drivers.connect_errors import is_permanent_connect_error, is_slot_refused
from poolbridge.errors import HookError, PoolClosed, PoolTimeout
from poolbridge.pool.diagnostics import pool_timeout_message
from poolbridge.pool.lifetime import idle_too_long
from poolbridge.pool.loopguard import get_running_loop
from poolbridge.pool.retry import backoff_delay
from poolbridge.pool.waiters import WaiterQueue, WaitExpired

if TYPE_CHECKING:
    from poolbridge.adapters.sqlalchemy._state import BridgeState

__all__ = ["BridgePool", "BridgePoolTimeout"]

logger = logging.getLogger("poolbridge.sqlalchemy")

#: what a waiter's future receives: a record, or None = "a slot is yours: open a connection"
_Grant = ConnectionPoolEntry | None


class BridgePoolTimeout(PoolTimeout, sa_exc.TimeoutError):
    """PoolTimeout raised inside a SQLAlchemy engine; also a sqlalchemy.exc.TimeoutError."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class BridgePool(Pool):
    """A FIFO, hard-capped asyncio pool for SQLAlchemy (see the module docstring)."""

    _is_asyncio = True  # declares the class asyncio-compatible, as AsyncAdaptedQueuePool does

    def __init__(
        self,
        creator: Any,
        pool_size: int = 5,
        max_overflow: int = 0,
        timeout: float = 30.0,
        use_lifo: bool = False,
        poolbridge: BridgeState | None = None,
        **kw: Any,
    ) -> None:
        if poolbridge is None:
            raise TypeError("BridgePool needs poolbridge=<BridgeState>: use create_async_engine()")
        # SQLAlchemy's pre-ping would run unbounded on a stalled link: the checkout
        # listener pings instead, bounded (see _events._Pinger)
        kw["pre_ping"] = False
        super().__init__(creator, **kw)
        # what recreate() passes on: the arguments this pool was made with (SQLAlchemy's
        # Pool keyword arguments) and the dispatch, so listeners survive engine.dispose()
        self._made_with: dict[str, Any] = dict(
            kw, pool_size=pool_size, max_overflow=max_overflow, timeout=timeout, use_lifo=use_lifo
        )
        self._made_with.pop("_dispatch", None)
        self._creator_fn = creator
        # a pool made by recreate() (engine.dispose()) is dormant until first used: no
        # maintenance, no refill (SQLAlchemy's fresh pool starts empty too)
        self._dormant = False
        self._max = pool_size  # max_overflow is ignored on purpose: pool_size is the hard cap
        self._timeout = timeout
        self._state = poolbridge
        self._open = 0  # slots taken: open connections + connections being opened
        self._idle: collections.deque[ConnectionPoolEntry] = collections.deque()
        self._idle_since: dict[ConnectionPoolEntry, float] = {}
        # FIFO hand-off, bounded waits through one timer, max_waiting (pool/waiters.py);
        # the deque bound once for the hot path's "anyone waiting?" test
        self._queue: WaiterQueue[_Grant] = WaiterQueue(
            poolbridge.config.name, poolbridge.config.max_waiting, poolbridge.recorder,
            self._pass_on,
        )  # fmt: skip
        self._waiters = self._queue.waiters
        self._disposed = False
        self._returning = 0  # given back, held until their async on_checkin ends
        poolbridge.attach(self)

    # -- SQLAlchemy's subclass points (as QueuePool implements them) -----------------------
    # _do_get and _do_return_conn run once per query: their common path (an idle connection
    # taken, a returned one handed on (as _hand) or made idle, the expiry check of
    # BridgeState.expired) is written out in place: no helper calls
    def _do_get(self) -> ConnectionPoolEntry:
        state = self._state
        if self._dormant:
            self._dormant = False
            state.resume()
        guard = state.guard
        if guard.loop is not get_running_loop():  # other loop, or a forked child
            raise guard.error()
        if state.closed or self._disposed:
            raise PoolClosed(f"pool {state.config.name!r} is closed")
        start = now = monotonic()
        # acquire_timeout=0 (SQLAlchemy's pool_timeout=0): never wait for a connection, but
        # opening one on a free slot is still bounded by connect_timeout only
        deadline = start + (self._timeout or state.config.connect_timeout)
        idle = self._idle
        metas = state.metas
        while True:
            # the most recently returned idle connection (LIFO keeps the rest idle, so
            # max_idle can shrink the pool), unless someone already waits: then we queue
            rec = None
            while idle and not self._waiters:
                rec = idle.pop()
                self._idle_since.pop(rec, None)
                meta = metas.get(rec)
                if rec.dbapi_connection is None or (
                    meta is not None  # as state.expired(rec)
                    and (meta.epoch != state.epoch or now >= meta.deadline)
                ):
                    self._close_record(rec)
                    self._release_slot()
                    rec = None
                    now = monotonic()
                    continue
                break
            if rec is None:
                if not self._waiters and self._open < self._max and not self._returning:
                    self._open += 1
                    rec = self._open_for_caller(deadline)
                else:
                    rec = self._wait(start)
            break
        # the checkout is counted here (a pool event listener would cost an event dispatch
        # per query); the checkout listener adds only what is configured (see _events)
        now = monotonic()
        state.recorder.record_checkout(now - start)
        state.checked_out[rec] = (now, None)
        waits = state.waits
        if waits is not None:  # pre_ping: its bound is what is left of acquire_timeout
            waits[rec] = now - start
        return rec

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        state = self._state
        out = state.checked_out.pop(record, None)
        if out is not None:  # counted here as its checkout was in _do_get
            state.recorder.record_checkin(monotonic() - out[0])
            leaks = state.leaks
            if out[1] is not None and leaks is not None:  # a leak lease (leak_timeout set)
                leaks.checkin(out[1])
            if state.waits:  # a failed checkout never reached the pre-ping that takes it
                state.waits.pop(record, None)
            if state.draining is not None:
                state.checked_in()
        returning = state.returning
        if returning:  # an async on_checkin still runs: hand the connection on after it
            task = returning.pop(record, None)
            if task is not None and not task.done():
                self._returning += 1
                task.add_done_callback(lambda _: self._returned(record))
                return
        meta = state.metas.get(record)
        replace = state.replace
        if (
            self._disposed
            or state.closed
            or record.dbapi_connection is None
            or (replace and record in replace)
            or (
                meta is not None  # as state.expired(record)
                and (meta.epoch != state.epoch or monotonic() >= meta.deadline)
            )
        ):
            replace.discard(record)
            self._discard(record)
            return
        if self._waiters and self._queue.hand(record):  # FIFO hand-off
            return
        self._idle.append(record)
        self._idle_since[record] = monotonic()

    def _returned(self, record: ConnectionPoolEntry) -> None:
        """The on_checkin task of ``record`` ended: hand it over; once nothing is coming
        back, open connections on free slots for whoever still waits."""
        self._returning -= 1
        self._do_return_conn(record)
        while not self._returning and self._waiters and self._open < self._max:
            if not self._queue.hand(None):
                break
            self._open += 1

    def recreate(self) -> BridgePool:
        """A new, empty pool made with the same arguments and the same dispatch (as
        SQLAlchemy's pools do). It stays dormant until used; this one is retired: what is
        checked in to it later is closed."""
        self.logger.info("Pool recreating")
        self._disposed = True
        self._state.pause()
        pool = type(self)(
            self._creator_fn, _dispatch=self.dispatch, poolbridge=self._state, **self._made_with
        )
        pool._dormant = True
        return pool

    def dispose(self) -> None:
        """Close the idle connections; connections returned later are closed too."""
        self._disposed = True
        self._state.pause()
        while self._idle:
            rec = self._idle.pop()
            self._idle_since.pop(rec, None)
            self._close_record(rec)
            self._release_slot()
        self.logger.info("Pool disposed. %s", self.status())

    # the answers of QueuePool(pool_size=max_size, max_overflow=0), the pool this replaces
    def status(self) -> str:
        return (
            f"Pool size: {self.size()}  Connections in pool: {self.checkedin()} "
            f"Current Overflow: {self.overflow()} "
            f"Current Checked out connections: {self.checkedout()}"
        )

    def size(self) -> int:
        return self._max

    def timeout(self) -> float:
        return self._timeout

    def checkedin(self) -> int:
        return len(self._idle)

    def overflow(self) -> int:
        """Connections open or being opened beyond ``size()`` (negative below it), as
        QueuePool counts them."""
        return self._open - self._max

    def checkedout(self) -> int:
        """Connections not idle in the pool: in use, being opened, or waiting for their
        on_checkin to end (QueuePool counts a connection being opened as checked out)."""
        return self._open - len(self._idle)

    # -- introspection used by the adapter and tests ---------------------------------------
    @property
    def open_slots(self) -> int:
        return self._open

    @property
    def idle_count(self) -> int:
        return len(self._idle)

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    # -- the queue -----------------------------------------------------------------------
    def _wait(self, start: float) -> ConnectionPoolEntry:
        """Queue for a record or a slot (pool/waiters.py); runs in SQLAlchemy's greenlet."""
        queue = self._queue
        if not self._timeout:  # acquire_timeout=0: fail at once when exhausted
            queue.check_room()  # max_waiting first: TooManyRequests
            raise self._timeout_error(monotonic() - start, len(self._waiters) + 1)
        deadline = start + self._timeout
        fut = queue.join(get_running_loop(), deadline)  # max_waiting: TooManyRequests
        try:
            # the future itself: no asyncio.wait()/wait_for() wrapper (an extra future,
            # callbacks and a loop turn per wait); the queue's timer bounds it
            grant = await_(fut)
        except WaitExpired:
            waiting = len(self._waiters)  # this caller still counted
            queue.abandon(fut)
            raise self._timeout_error(monotonic() - start, waiting) from None
        except BaseException:
            queue.abandon(fut)  # a record or slot handed to us meanwhile goes on
            raise
        if grant is None:  # a slot was passed to us: open a connection on it
            return self._open_for_caller(deadline)
        return grant

    def _pass_on(self, grant: _Grant) -> None:
        """What a waiter that left was handed: a record goes to the next waiter (or idle),
        a slot to the next waiter (or is freed)."""
        if grant is None:
            self._release_slot()
        else:
            self._hand(grant)

    def _hand(self, rec: ConnectionPoolEntry) -> None:
        """Give ``rec`` to the first live waiter, else make it idle."""
        if self._waiters and self._queue.hand(rec):
            return
        self._idle.append(rec)
        self._idle_since[rec] = monotonic()

    def _release_slot(self) -> None:
        """A slot became free: pass it to the first live waiter, else free it (and refill)."""
        if self._waiters and self._queue.hand(None):
            return
        self._open -= 1
        self._state.kick()

    def _discard(self, rec: ConnectionPoolEntry) -> None:
        self._close_record(rec)
        self._release_slot()

    def _close_record(self, rec: ConnectionPoolEntry) -> None:
        if rec.dbapi_connection is None:
            return
        if in_greenlet():
            rec.close()
        else:  # e.g. garbage-collection cleanup: close on the loop instead
            self._state.close_later(rec)

    def _open_for_caller(self, deadline: float) -> ConnectionPoolEntry:
        """Open a connection on a slot already counted, in its own task: a caller cancelled
        meanwhile leaves, and the connection, once open, goes to the next waiter or the idle
        list instead of being thrown away (a cancelled connect would otherwise cost every
        retrying caller a whole new connect)."""
        task = get_running_loop().create_task(greenlet_spawn(self._create_on_slot, deadline))
        try:
            return await_(asyncio.shield(task))
        except asyncio.CancelledError:
            # also when the connect has just ended: its result never reached this caller
            task.add_done_callback(self._adopt)
            raise

    def _adopt(self, task: asyncio.Task[ConnectionPoolEntry]) -> None:
        """The connect of a caller that left ended: pool what it opened (its slot was
        given up already if it failed)."""
        if task.cancelled() or task.exception() is not None:
            return
        rec = task.result()
        if self._disposed or self._state.closed:
            self._discard(rec)
        else:
            self._hand(rec)

    def _create_on_slot(self, deadline: float) -> ConnectionPoolEntry:
        """Open a connection on a slot already counted; on failure the slot is passed on."""
        state = self._state
        policy = state.config.retry
        attempt = 0
        token = CONNECT_DEADLINE.set(deadline)  # each attempt gets min(connect_timeout, left)
        try:
            while True:
                try:
                    return self._create_connection()
                except HookError:
                    raise
                except Exception as exc:
                    state.recorder.record_error()
                    attempt += 1
                    delay = backoff_delay(policy, attempt)
                    # a refused slot (waited for within the attempt) is the server's pool
                    # exhausted: retried until the deadline, then PoolTimeout as for ours
                    full = is_slot_refused(exc)
                    if (isinstance(exc, TimeoutError) and monotonic() >= deadline) or (
                        full and monotonic() + delay >= deadline
                    ):
                        waited = monotonic() - (deadline - self._timeout)
                        waiting = len(self._waiters) + 1  # this caller too
                        raise self._timeout_error(waited, waiting) from exc
                    if (
                        (attempt >= policy.attempts and not full)
                        or monotonic() + delay >= deadline
                        or is_permanent_connect_error(exc)  # wrong password, unknown db ...
                    ):
                        raise
                    state.recorder.record_retry()
                    logger.warning(
                        "pool %r: connection attempt %d failed, retrying in %.2f s",
                        state.config.name, attempt, delay, exc_info=True,
                    )  # fmt: skip
                    await_(asyncio.sleep(delay))
        except BaseException:
            self._release_slot()
            raise
        finally:
            CONNECT_DEADLINE.reset(token)

    def checkout_timeout(self, waited: float) -> BridgePoolTimeout:
        """The PoolTimeout of a checkout that ran out of time outside the waiter queue
        (SQLAlchemy reconnecting a record inside the checkout)."""
        return self._timeout_error(waited, len(self._waiters) + 1)

    def _timeout_error(self, waited: float, waiting: int) -> BridgePoolTimeout:
        """Count the timeout, fire on_timeout and describe the pool (``waiting``: callers
        waiting for a connection, this one included)."""
        state = self._state
        state.recorder.record_timeout()
        state.fire_timeout()
        return BridgePoolTimeout(
            pool_timeout_message(
                state.config.name,
                adapter=state.adapter,
                acquire_timeout=self._timeout,
                max_size=self._max,
                in_use=state.in_use,
                idle=len(self._idle),
                waiting=waiting,
                held_ages=state.held_ages(),
                waited=waited,
            )
        )

    # -- maintenance (called by BridgeState's task, inside greenlet_spawn) -------------------
    def fill_one(self) -> bool:
        """Open one connection if below min_size (slot first); False when nothing to do."""
        if self._disposed or self._state.closed or self._open >= self._state.min_keep:
            return False
        self._open += 1
        config = self._state.config
        rec = self._create_on_slot(monotonic() + (config.acquire_timeout or config.connect_timeout))
        self._hand(rec)
        return True

    def reap(self, now: float) -> int:
        """Close idle connections past max_idle (above min_size) or past their lifetime."""
        state = self._state
        closed = 0
        max_idle = state.max_idle
        for rec in list(self._idle):
            since = self._idle_since.get(rec)
            if since is None:
                continue
            stale = idle_too_long(now, since, max_idle)
            if (stale and self._open > state.min_keep) or state.expired(rec) or state.dead(rec):
                self._idle.remove(rec)
                self._idle_since.pop(rec, None)
                self._discard(rec)
                closed += 1
        return closed
