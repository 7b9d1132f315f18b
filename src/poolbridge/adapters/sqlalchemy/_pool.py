"""The pool class poolbridge puts inside a SQLAlchemy AsyncEngine (``poolclass=BridgePool``).

SQLAlchemy's AsyncAdaptedQueuePool starts empty, never closes idle connections, queues
callers without bound and lets a task that re-acquires in a loop barge ahead of waiters
(its asyncio.Queue hands an item to whoever calls ``get_nowait()`` first). BridgePool keeps
SQLAlchemy's record/fairy machinery (so events, recycle, pre-ping, reset-on-return and
invalidation behave as usual) and replaces only the queue:

- a hard cap of ``max_size`` slots; a slot is taken before a connection is opened (outside
  any lock: there is none, the pool lives on one event loop);
- FIFO hand-off: a returned connection goes straight to the first waiter's future; while
  anyone waits, nobody takes an idle connection or opens a new one ahead of them. A waiter
  awaits its bare future (no ``asyncio.wait``/``wait_for`` wrapper); one timer per pool,
  armed for the earliest deadline, enforces ``acquire_timeout`` for all of them, so a
  wait costs a future and a dict entry (at 100 tasks on 10 connections every checkout waits);
- ``max_waiting`` (TooManyRequests at once), ``acquire_timeout`` (PoolTimeout with diagnostics,
  also a ``sqlalchemy.exc.TimeoutError`` so existing ``except`` clauses keep working);
- per-connection lifetime with jitter, idle reaping above ``min_size``, warm-up and refill
  (run by :class:`BridgeState`'s maintenance task, see :mod:`._sqlalchemy_state`);
- pre_ping bounded in time: SQLAlchemy's own pre-ping waits forever on a stalled link (no
  byte flows, no error comes), so BridgePool switches it off and pings a reused connection
  itself, for at most ``connect_timeout`` and never past the caller's acquire deadline.

``_do_get`` runs inside SQLAlchemy's greenlet, so it can wait on asyncio with ``await_``.
Every path that gives up a slot (failed connect, cancelled waiter, discarded connection)
passes it on to the first waiter or frees it: cancellation never leaks a slot.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from time import monotonic
from typing import TYPE_CHECKING, Any

from sqlalchemy import exc as sa_exc
from sqlalchemy import util
from sqlalchemy.pool import Pool
from sqlalchemy.pool.base import (
    ConnectionPoolEntry,
    PoolProxiedConnection,
    _AsyncConnDialect,
    _ConnectionFairy,
)
from sqlalchemy.util import await_
from sqlalchemy.util.concurrency import in_greenlet

from poolbridge.adapters.sqlalchemy._state import CONNECT_DEADLINE, ConnMeta, sever
from poolbridge.drivers.connect_errors import is_permanent_connect_error
from poolbridge.errors import HookError, PoolClosed, PoolTimeout, TooManyRequests
from poolbridge.pool.diagnostics import pool_timeout_message
from poolbridge.pool.loopguard import get_running_loop
from poolbridge.pool.retry import backoff_delay

if TYPE_CHECKING:
    from poolbridge.adapters.sqlalchemy._state import BridgeState

__all__ = ["BridgePool", "BridgePoolTimeout"]

logger = logging.getLogger("poolbridge.sqlalchemy")

#: what a waiter's future receives: a record, or None = "a slot is yours: open a connection"
_Grant = ConnectionPoolEntry | None


class _Expired:
    """Set on a waiter's future by the pool's deadline timer: acquire_timeout passed."""


_EXPIRED = _Expired()


class BridgePoolTimeout(PoolTimeout, sa_exc.TimeoutError):
    """PoolTimeout raised inside a SQLAlchemy engine; also a sqlalchemy.exc.TimeoutError."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class BridgePool(Pool):
    """A FIFO, hard-capped asyncio pool for SQLAlchemy (see the module docstring)."""

    _is_asyncio = True
    _dialect = _AsyncConnDialect()

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
        super().__init__(creator, **kw)
        self._max = pool_size  # max_overflow is ignored on purpose: pool_size is the hard cap
        self._timeout = timeout
        self._state = poolbridge
        self._open = 0  # slots taken: open connections + connections being opened
        self._idle: collections.deque[ConnectionPoolEntry] = collections.deque()
        self._idle_since: dict[ConnectionPoolEntry, float] = {}
        self._waiters: collections.deque[asyncio.Future[_Grant | _Expired]] = collections.deque()
        # one timer for all waiters, armed for the earliest deadline (see _expire): a
        # call_later + cancel per wait would cost more than the rest of the wait together
        self._deadlines: dict[asyncio.Future[_Grant | _Expired], float] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._disposed = False
        self._returning = 0  # given back, held until their async on_checkin ends
        # pre_ping is ours (bounded, see _ping_ok): SQLAlchemy's own would run unbounded too
        self._pre_ping = False
        poolbridge.attach(self)

    # -- SQLAlchemy Pool API ---------------------------------------------------------------
    def connect(self) -> PoolProxiedConnection:
        """Check a connection out (SQLAlchemy's ``Pool.connect``), then count it, track it
        for leaks and run on_checkout.

        Not a ``checkout`` event listener: with one, SQLAlchemy dispatches the event and
        takes its slow checkout path (the pre-ping/reconnect loop) on every query. A
        failure or cancellation in here invalidates and returns the connection, as
        SQLAlchemy does when a checkout listener raises. Listeners the application adds
        still run, inside ``_checkout`` (before this).
        """
        fairy = _ConnectionFairy._checkout(self)
        rec = fairy._connection_record
        assert rec is not None
        # not fresh any more: the next checkout pre-pings it (SQLAlchemy clears this flag
        # only on its slow path)
        rec.fresh = False
        state = self._state
        try:
            now = monotonic()
            state.recorder.record_checkout(state.waits.pop(rec, 0.0))
            state.checked_out[rec] = (now, None if state.leaks is None else state.lease(rec))
            emit = state.emit_checkout
            if emit is not None:
                state.fire_hot(emit, rec, now, None, inline=True)
        except BaseException as err:
            with util.safe_reraise():
                rec._checkin_failed(err, _fairy_was_created=True)
        return fairy

    def _return_conn(self, record: ConnectionPoolEntry) -> None:
        """A connection comes back (after the reset-on-return and the application's
        ``checkin`` listeners): stats, leaks, on_checkin, then the queue.

        An async on_checkin runs as a task (this may run while a cancellation unwinds:
        awaiting here could abort the checkin); nobody gets the connection before it ends,
        callers meanwhile wait for it rather than open another connection.
        """
        state = self._state
        out = state.checked_out.pop(record, None)
        if out is not None:
            now = monotonic()
            held = now - out[0]
            state.recorder.record_checkin(held)
            if state.leaks is not None:
                state.leaks.checkin(out[1])
            emit = state.emit_checkin
            task = None
            if emit is not None and record.dbapi_connection is not None:
                task = state.fire_hot(emit, record, now, held, inline=False)
            if state.draining is not None:
                state.checked_in()
            if task is not None and not task.done():
                self._returning += 1
                task.add_done_callback(lambda _: self._returned(record))
                return
        else:
            # its checkout failed after _do_get (a checkout listener raised or was
            # cancelled, a reconnect failed): connect() never took the wait _do_get noted
            state.waits.pop(record, None)
        self._do_return_conn(record)

    # _do_get and _do_return_conn run once per query: their common path (an idle connection
    # taken, a returned one handed on (as _hand) or made idle, the expiry check of
    # BridgeState.expired) is inlined, no helper calls
    def _do_get(self) -> ConnectionPoolEntry:
        state = self._state
        guard = state.guard
        if guard.loop is not get_running_loop():  # other loop, or a forked child
            raise guard.error()
        if state.closed or self._disposed:
            raise PoolClosed(f"pool {state.config.name!r} is closed")
        start = now = monotonic()
        deadline = start + self._timeout
        idle = self._idle
        while True:
            # the most recently returned idle connection (LIFO keeps the rest idle, so
            # max_idle can shrink the pool), unless someone already waits: then we queue
            rec = None
            while idle and not self._waiters:
                rec = idle.pop()
                self._idle_since.pop(rec, None)
                meta = rec.info.get("poolbridge")
                if rec.dbapi_connection is None or (
                    isinstance(meta, ConnMeta)  # state.expired(rec), inlined
                    and (
                        meta.epoch != state.epoch
                        or (meta.deadline is not None and now >= meta.deadline)
                    )
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
                    rec = self._create_on_slot(deadline)
                else:
                    rec = self._wait(start)
            # a connection never handed out yet is fresh: no ping (as SQLAlchemy does)
            if not state.config.pre_ping or getattr(rec, "fresh", False):
                break
            if self._ping_ok(rec, deadline):
                break
            now = monotonic()
            if now >= deadline:  # the dead connection used up the caller's time
                raise self._timeout_error(now - start, len(self._waiters) + 1)
        state.waits[rec] = monotonic() - start  # taken by connect()
        return rec

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        info = record.info
        state = self._state
        meta = info.get("poolbridge")
        now = monotonic()
        if (
            self._disposed
            or state.closed
            or record.dbapi_connection is None
            or info.pop("poolbridge_replace", False)
            or (
                isinstance(meta, ConnMeta)  # state.expired(record), inlined
                and (
                    meta.epoch != state.epoch
                    or (meta.deadline is not None and now >= meta.deadline)
                )
            )
        ):
            self._discard(record)
            return
        waiters = self._waiters
        while waiters:  # _hand, inlined
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(record)
                return
        self._idle.append(record)
        self._idle_since[record] = now

    def _returned(self, record: ConnectionPoolEntry) -> None:
        """The on_checkin task of ``record`` ended: hand it over; once nothing is coming
        back, open connections on free slots for whoever still waits."""
        self._returning -= 1
        self._do_return_conn(record)
        while not self._returning and self._waiters and self._open < self._max:
            fut = self._waiters.popleft()
            if not fut.done():
                self._open += 1
                fut.set_result(None)

    def recreate(self) -> BridgePool:
        self.logger.info("Pool recreating")
        return type(self)(
            self._creator,
            pool_size=self._max,
            timeout=self._timeout,
            recycle=self._recycle,
            echo=self.echo,
            logging_name=self._orig_logging_name,
            reset_on_return=self._reset_on_return,
            pre_ping=self._pre_ping,
            _dispatch=self.dispatch,
            dialect=self._dialect,
            poolbridge=self._state,
        )

    def dispose(self) -> None:
        """Close the idle connections; connections returned later are closed too."""
        self._disposed = True
        while self._idle:
            rec = self._idle.pop()
            self._idle_since.pop(rec, None)
            self._close_record(rec)
            self._release_slot()
        self.logger.info("Pool disposed. %s", self.status())

    def status(self) -> str:
        return (
            f"BridgePool max_size={self._max} open={self._open} idle={len(self._idle)} "
            f"waiting={len(self._waiters)} in_use={self.checkedout()}"
        )

    def size(self) -> int:
        return self._max

    def timeout(self) -> float:
        return self._timeout

    def checkedin(self) -> int:
        return len(self._idle)

    def overflow(self) -> int:
        return 0

    def checkedout(self) -> int:
        return self._state.in_use

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
        state = self._state
        if state.config.max_waiting and len(self._waiters) >= state.config.max_waiting:
            state.recorder.record_refused()
            raise TooManyRequests(
                f"pool {state.config.name!r}: {len(self._waiters)} callers already wait "
                f"(max_waiting={state.config.max_waiting})"
            )
        loop = get_running_loop()
        fut: asyncio.Future[_Grant | _Expired] = loop.create_future()
        deadline = start + self._timeout
        self._waiters.append(fut)
        self._deadlines[fut] = deadline
        if self._timer is None or deadline < self._timer_at:
            self._arm(loop, deadline)
        state.recorder.pending += 1
        try:
            # the future itself: no asyncio.wait()/wait_for() wrapper (an extra future,
            # callbacks and a loop turn per wait); the timer above bounds it
            grant = await_(fut)
        except BaseException:
            self._abandon(fut)
            raise
        finally:
            state.recorder.pending -= 1
            del self._deadlines[fut]
            if not self._deadlines and self._timer is not None:
                self._timer.cancel()
                self._timer = None
        if isinstance(grant, _Expired):
            waiting = len(self._waiters)
            self._abandon(fut)
            raise self._timeout_error(monotonic() - start, waiting)
        if grant is None:  # a slot was passed to us: open a connection on it
            return self._create_on_slot(deadline)
        return grant

    def _arm(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = loop.call_later(max(0.0, deadline - monotonic()), self._expire)

    def _expire(self) -> None:
        """The deadline timer fired: wake every waiter whose acquire_timeout has passed
        (it raises PoolTimeout) and re-arm for the earliest remaining deadline."""
        self._timer = None
        now = monotonic()
        earliest: float | None = None
        for fut, deadline in self._deadlines.items():
            if fut.done():
                continue
            if deadline <= now:
                fut.set_result(_EXPIRED)
            elif earliest is None or deadline < earliest:
                earliest = deadline
        if earliest is not None:
            self._arm(get_running_loop(), earliest)

    def _abandon(self, fut: asyncio.Future[_Grant | _Expired]) -> None:
        """A waiter leaves (timeout, cancellation): pass on whatever it was already given."""
        if fut.done() and not fut.cancelled():
            if fut.exception() is not None:  # refused by close(): nothing to pass on
                return
            grant = fut.result()
            if grant is None:
                self._release_slot()
            elif isinstance(grant, _Expired):  # woken by the timer: still queued
                with contextlib.suppress(ValueError):
                    self._waiters.remove(fut)
            else:
                self._hand(grant)
            return
        fut.cancel()
        with contextlib.suppress(ValueError):  # already popped by a hand-off
            self._waiters.remove(fut)

    def _hand(self, rec: ConnectionPoolEntry) -> None:
        """Give ``rec`` to the first live waiter, else make it idle."""
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(rec)
                return
        self._idle.append(rec)
        self._idle_since[rec] = monotonic()

    def _release_slot(self) -> None:
        """A slot became free: pass it to the first live waiter, else free it (and refill)."""
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
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
                    if isinstance(exc, TimeoutError) and monotonic() >= deadline:
                        waited = monotonic() - (deadline - self._timeout)
                        waiting = len(self._waiters) + 1  # this caller too
                        raise self._timeout_error(waited, waiting) from exc
                    if (
                        attempt >= policy.attempts
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

    def _ping_ok(self, rec: ConnectionPoolEntry, deadline: float) -> bool:
        """pre_ping a reused connection: True when alive; a dead one is cut, closed and its
        slot given up (the caller goes on acquiring within the same deadline).

        The ping (the dialect's, with its handle_error events) is bounded by
        ``connect_timeout`` and by the caller's acquire ``deadline``: when the bound passes
        without an answer, the connection is cut (:func:`sever`), which makes the pending
        ping fail at once. Cutting instead of cancelling: psycopg answers a cancellation by
        sending a cancel request and waiting for the server again, up to 10 s.
        """
        state = self._state
        driver_conn = rec.driver_connection
        bound = max(0.0, min(state.config.connect_timeout, deadline - monotonic()))
        fired = False

        def cut() -> None:
            nonlocal fired
            fired = True
            with contextlib.suppress(Exception):
                sever(state.driver, driver_conn)

        # SQLite has no network to stall: its ping is not cut (that would drop the data of
        # an in-memory database)
        timer = None if state.driver == "aiosqlite" else get_running_loop().call_later(bound, cut)
        try:
            dbapi_conn = rec.dbapi_connection
            alive = dbapi_conn is not None and bool(self._dialect._do_ping_w_event(dbapi_conn))
        except Exception as exc:
            alive = False
            logger.info("pool %r: pre-ping failed: %r", state.config.name, exc)
        except BaseException:  # cancelled mid-ping: the connection's state is unknown
            self._drop_dead(rec)
            raise
        finally:
            if timer is not None:
                timer.cancel()
        if alive and not fired:
            return True
        if fired:
            logger.warning(
                "pool %r: pre-ping got no answer within %.2f s: connection cut",
                state.config.name, bound,
            )  # fmt: skip
        self._drop_dead(rec)
        return False

    def _drop_dead(self, rec: ConnectionPoolEntry) -> None:
        """Cut (no round trip: the link may be stalled) and close a connection found dead,
        and give up its slot."""
        with contextlib.suppress(Exception):
            sever(self._state.driver, rec.driver_connection)
        self._discard(rec)

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
        rec = self._create_on_slot(monotonic() + self._state.config.acquire_timeout)
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
            stale = max_idle is not None and now - since >= max_idle
            if (stale and self._open > state.min_keep) or state.expired(rec) or state.dead(rec):
                self._idle.remove(rec)
                self._idle_since.pop(rec, None)
                self._discard(rec)
                closed += 1
        return closed
