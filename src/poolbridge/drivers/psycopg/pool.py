"""psycopg_pool's AsyncConnectionPool with poolbridge's hooks, stats, leak tracking and errors.

psycopg_pool honours every pool knob itself (DESIGN: "psycopg keeps psycopg_pool"), so the
psycopg adapter, Tortoise's psycopg client and peewee-async's Psycopg3Database all keep it.
What it lacks is poolbridge's surface, which :class:`PBConnectionPool` adds at the points
every caller goes through (``pool.connection()``, Tortoise's ``acquire``/``release`` and
peewee-async's backend included):

- ``configure`` (on_connect, with the server pid) and ``_connect`` (connection.created,
  connect errors); ``_close_connection`` / ``_return_connection`` (connection.closed and
  on_close for every physical connection, broken ones included);
- ``getconn`` / ``putconn``: checkout/checkin stats and hooks, leak tracking, a rollback of
  a dirty transaction at checkin (psycopg_pool would do it too, with a warning log), and
  psycopg_pool's PoolTimeout / TooManyRequests / PoolClosed raised as poolbridge's — types
  that subclass both, so existing ``except psycopg_pool.PoolTimeout`` clauses keep working.
  Both inline psycopg_pool's own getconn/putconn and the small coroutines they await (a
  coroutine frame each per checkout, issue 9); tests/psycopg/test_psycopg_inlined.py
  fails when a psycopg_pool release changes the code copied.

An ``on_connect`` failure makes psycopg_pool discard that connection and retry in the
background (its policy for any connection failure), so a caller sees PoolTimeout naming the
last connection error (HookError) rather than HookError itself on this stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from time import monotonic
from typing import Any

import psycopg
import psycopg_pool
from psycopg.pq import TransactionStatus
from psycopg_pool.pool_async import ReturnConnection

from poolbridge import errors
from poolbridge.config.model import PasswordProvider, PoolConfig
from poolbridge.drivers.base import raw_scalar
from poolbridge.drivers.connect_errors import is_permanent_connect_error
from poolbridge.drivers.psycopg.conninfo import settle_after_hook as _settle
from poolbridge.drivers.psycopg.watchdog import watched_connection_class
from poolbridge.pool.budget import BudgetAtOpen
from poolbridge.pool.connect_error import WarmUpWatch
from poolbridge.pool.deadlines import Deadlines
from poolbridge.pool.diagnostics import pool_timeout_message
from poolbridge.pool.hooks import ConnectionEvent, HookRunner, Hooks
from poolbridge.pool.leaks import LeakTracker, Lease
from poolbridge.pool.loopguard import LoopGuard, get_running_loop
from poolbridge.pool.rotation import settle, with_password
from poolbridge.pool.stats import StatsRecorder
from poolbridge.pool.watchdog import backstop, shutdown_socket

__all__ = [
    "ConnectError",
    "PBConnectionPool",
    "PoolClosed",
    "PoolTimeout",
    "PsycopgHolder",
    "TooManyRequests",
]

logger = logging.getLogger("poolbridge.adapters.psycopg")
_pool_logger = logging.getLogger("psycopg.pool")  # psycopg_pool's, for what getconn/putconn log

_DIRTY = (TransactionStatus.INTRANS, TransactionStatus.INERROR)
_UNKNOWN = TransactionStatus.UNKNOWN

#: monotonic instant the current getconn() gives up (read by the bounded pre-ping check)
_ACQUIRE_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "poolbridge_psycopg_acquire_deadline", default=None
)


class PoolTimeout(errors.PoolTimeout, psycopg_pool.PoolTimeout):
    """poolbridge's PoolTimeout that is also a psycopg_pool.PoolTimeout."""


class ConnectError(errors.ConnectError, psycopg_pool.PoolTimeout):
    """poolbridge's ConnectError that is also a psycopg_pool.PoolTimeout: what a stock
    ``open(wait=True)`` raises when the pool cannot fill, so ``except PoolTimeout`` (and
    Tortoise's own translation of it) keep working."""


class TooManyRequests(errors.TooManyRequests, psycopg_pool.TooManyRequests):
    """poolbridge's TooManyRequests that is also psycopg_pool's."""


class PoolClosed(errors.PoolClosed, psycopg_pool.PoolClosed):
    """poolbridge's PoolClosed that is also psycopg_pool's."""


class PsycopgHolder:
    """What outlives one psycopg_pool (the hook runner, stats recorder and leak tracker,
    shared with the uniform Pool handle) and the pool currently open. Same role as
    EngineHolder: Tortoise and peewee-async may close and re-create their pool; once the
    handle is closed (``final``) they may not."""

    def __init__(self, config: PoolConfig, *, adapter: str, hooks: Hooks | None) -> None:
        self.config = config
        self.driver = "psycopg"
        self.adapter = adapter
        self.hook_runner = HookRunner(hooks or Hooks())
        self.recorder = StatsRecorder(min_size=config.min_size, max_size=config.max_size)
        self.leaks = LeakTracker(config, self.hook_runner, adapter)
        self.pool: PBConnectionPool | None = None
        self.final = False

    def check_open(self) -> None:
        if self.final:
            raise PoolClosed(f"pool {self.config.name!r} is closed")

    async def rotate(self, password: str | PasswordProvider | None) -> None:
        """Switch to ``password`` (None: keep it) for every new connection, also of a pool
        the ORM creates later, and replace every connection of the current pool."""
        self.check_open()
        self.config = with_password(self.config, password)
        if self.pool is not None and not self.pool.closed:
            await self.pool.pb_rotate(self.config)

    async def close(self, timeout: float | None) -> None:
        if self.pool is not None:
            await self.pool.pb_close(timeout)

    def server_ids(self) -> list[Any]:
        return [] if self.pool is None or self.pool.closed else self.pool.pb_server_ids()


class _Conn:
    """What the pool knows about one of its physical connections."""

    __slots__ = ("conn", "created", "epoch", "lease", "out_since", "server_id")

    def __init__(
        self, conn: psycopg.AsyncConnection[Any], server_id: int | None, epoch: int = 0
    ) -> None:
        self.conn = conn
        self.epoch = epoch
        self.created = monotonic()
        self.server_id = server_id
        self.out_since: float | None = None
        self.lease: Lease | None = None


def _server_id(conn: psycopg.AsyncConnection[Any]) -> int | None:
    try:
        return int(conn.info.backend_pid)
    except Exception:
        return None


async def _settle_quietly(conn: psycopg.AsyncConnection[Any], pool: str) -> None:
    """:func:`_settle` after on_checkout/on_checkin: a failure is logged, never raised
    into the caller (the connection's state then tells psycopg_pool to discard it)."""
    try:
        await _settle(conn)
    except Exception as exc:
        logger.warning("pool %r: committing what a hook did failed: %r", pool, exc)


def _cut(pgconn: Any) -> None:
    """Shut down ``pgconn``'s socket: what is waiting on it fails with a connection error."""
    with contextlib.suppress(Exception):
        shutdown_socket(pgconn.socket)


async def _within(
    conn: psycopg.AsyncConnection[Any],
    seconds: float,
    what: str,
    op: Callable[[], Awaitable[Any]],
) -> None:
    """Run ``op`` (a round trip on ``conn``) for at most ``seconds``. Unbounded it waits
    forever on a stalled link (no byte flows, no error comes). When the time passes without
    an answer the socket is shut down (cancelling would make psycopg send a cancel request
    and wait up to 10 s more): ``op`` fails with a connection error, the connection is
    broken and psycopg_pool discards it. (The rollback at checkin does the same on the
    pool's shared timer, written out in :meth:`PBConnectionPool.putconn`.)"""
    pgconn = conn.pgconn
    fired = False

    def cut() -> None:
        nonlocal fired
        fired = True
        _cut(pgconn)

    timer = asyncio.get_running_loop().call_later(seconds, cut)
    try:
        await op()
    finally:
        timer.cancel()
    if fired:  # the answer raced the cut: the socket is dead all the same
        pgconn.finish()
        raise psycopg.OperationalError(f"{what} got no answer within {seconds:.2f} s")


class PBConnectionPool(psycopg_pool.AsyncConnectionPool):
    """An AsyncConnectionPool reporting to a :class:`PsycopgHolder` (hooks, stats, leaks).

    Takes AsyncConnectionPool's arguments plus ``poolbridge=``; it sets ``configure``,
    ``check`` (pre_ping), ``reset`` (reset="full") and a default ``name`` from the config.
    Mix it in before a subclass of AsyncConnectionPool (Tortoise's) to keep that API.
    """

    def __init__(self, *args: Any, poolbridge: PsycopgHolder, **kwargs: Any) -> None:
        config = poolbridge.config
        self.pb_config = config
        self.pb_adapter = poolbridge.adapter
        self.pb_hooks = poolbridge.hook_runner
        # checkout/checkin hooks bound once (None when not registered; see HookRunner.emitter)
        hooks = poolbridge.hook_runner
        self._pb_emit_checkout = hooks.emitter(
            "on_checkout", pool=config.name, adapter=self.pb_adapter
        )
        self._pb_emit_checkin = hooks.emitter(
            "on_checkin", pool=config.name, adapter=self.pb_adapter
        )
        self.pb_recorder = poolbridge.recorder
        self.pb_leaks = poolbridge.leaks
        self.pb_last_error: BaseException | None = None
        self._pb_conns: dict[int, _Conn] = {}
        self._pb_guard = LoopGuard(config.name)
        self._pb_epoch = 0  # bumped by pb_rotate(): older connections are stale
        self._pb_timers: Deadlines | None = None  # see _pb_deadlines
        self._pb_budget = BudgetAtOpen(config)  # asks the server once, on the first connection
        self._pb_warm = WarmUpWatch(config, is_permanent_connect_error, ConnectError)
        self._pb_leak_task: asyncio.Task[None] | None = None
        self._pb_drained: asyncio.Event | None = None
        kwargs["configure"] = self._pb_configure
        kwargs["check"] = self._pb_check if config.pre_ping else None
        kwargs["reset"] = self._pb_full_reset if config.reset == "full" else None
        kwargs.setdefault("name", config.name)
        kwargs["open"] = False
        limit = backstop(config.statement_timeout)
        if limit is not None:  # psycopg has no client-side bound of its own
            kwargs["connection_class"] = watched_connection_class(
                kwargs.get("connection_class", psycopg.AsyncConnection),
                limit,
                what=f"pool {config.name!r}",
            )
        super().__init__(*args, **kwargs)

    # -- physical connections -------------------------------------------------------------
    def _pb_event(self, rec: _Conn | None, held: float | None = None) -> ConnectionEvent:
        return ConnectionEvent(
            pool=self.pb_config.name,
            adapter=self.pb_adapter,
            connection_id=None if rec is None else rec.server_id,
            age=0.0 if rec is None else monotonic() - rec.created,
            held=held,
            connection=None if rec is None else rec.conn,
        )

    async def _pb_configure(self, conn: psycopg.AsyncConnection[Any]) -> None:
        rec = self._pb_conns[id(conn)] = _Conn(conn, _server_id(conn), self._pb_epoch)
        try:
            if self._pb_budget.pending:
                # held: open + being opened (psycopg_pool counts both in _nconns)
                held = max(len(self._pb_conns), self._nconns)
                await self._pb_budget.check(lambda sql: raw_scalar(conn, sql), held=held)
            await self.pb_hooks.run_on_connect(self._pb_event(rec))
            await _settle(conn)
        except BaseException:
            self._pb_conns.pop(id(conn), None)
            await conn.close()
            raise

    async def _pb_full_reset(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """reset="full": DISCARD ALL (startup options survive it), then replay on_connect."""
        autocommit = conn.autocommit
        await conn.set_autocommit(True)  # DISCARD ALL cannot run inside a transaction
        try:
            await conn.execute("DISCARD ALL")
        finally:
            await conn.set_autocommit(autocommit)
        await self.pb_hooks.run_on_connect(self._pb_event(self._pb_conns.get(id(conn))))
        await _settle(conn)

    async def _pb_check(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """pre_ping: psycopg_pool's check_connection, bounded by ``connect_timeout`` and the
        caller's acquire deadline. Unbounded, it waits forever on a stalled link (no byte
        flows, no error comes), past any acquire timeout. When the bound passes without an
        answer the socket is shut down (cancelling would make psycopg send a cancel request
        and wait up to 10 s more): the check fails with a connection error and psycopg_pool
        discards the connection and goes on within the caller's deadline (see _within)."""
        bound = self.pb_config.connect_timeout
        deadline = _ACQUIRE_DEADLINE.get()
        if deadline is not None:
            bound = max(0.0, min(bound, deadline - monotonic()))
        check = psycopg_pool.AsyncConnectionPool.check_connection
        await _within(conn, bound, "pre-ping", lambda: check(conn))

    async def _connect(self, timeout: float | None = None) -> Any:
        while True:
            t0 = monotonic()
            epoch = self._pb_epoch
            try:
                conn = await super()._connect(timeout)
            except BaseException as exc:
                self.pb_recorder.record_error()
                self.pb_last_error = exc
                self._pb_warm.failure(exc)
                raise
            self.pb_recorder.record_created(monotonic() - t0)
            if epoch == self._pb_epoch:
                return conn
            # pb_rotate() ran while it connected (old credentials): connect again
            await self._close_connection(conn)

    async def _pb_forget(self, conn: Any, *, was_used: bool = False) -> None:
        """Count a physical connection closed (once) and fire on_close."""
        rec = self._pb_conns.pop(id(conn), None)
        if rec is None:
            return
        self.pb_recorder.record_closed(was_used=was_used)
        if self.pb_hooks.has("on_close"):
            await self.pb_hooks.emit("on_close", self._pb_event(rec))

    async def _close_connection(self, conn: Any) -> None:
        try:
            await super()._close_connection(conn)
        finally:
            await self._pb_forget(conn)

    def _return_connection(self, conn: Any, from_getconn: bool) -> Coroutine[Any, Any, None]:
        # not a coroutine itself: every checkin goes through here, a frame of its own each
        if conn.pgconn.transaction_status == _UNKNOWN:
            return self._pb_return_broken(conn, from_getconn)
        return super()._return_connection(conn, from_getconn)

    async def _pb_return_broken(self, conn: Any, from_getconn: bool) -> None:
        # found broken: psycopg_pool drops it without close(); count it here
        with contextlib.suppress(Exception):
            await conn.close()
        await self._pb_forget(conn)
        await super()._return_connection(conn, from_getconn)

    def pb_server_ids(self) -> list[Any]:
        return [rec.server_id for rec in self._pb_conns.values()]

    # -- checkout / checkin ---------------------------------------------------------------
    def pb_diagnostics(self, waited: float, timeout: float) -> str:
        """PoolTimeout's message; called from getconn, so ``pending`` counts this caller."""
        now = monotonic()
        held = [now - r.out_since for r in self._pb_conns.values() if r.out_since is not None]
        return pool_timeout_message(
            self.pb_config.name,
            adapter=self.pb_adapter,
            acquire_timeout=timeout,
            max_size=self.max_size,
            in_use=len(held),
            idle=self.get_stats().get("pool_available", 0),
            waiting=max(1, self.pb_recorder.pending),
            held_ages=held,
            waited=waited,
            last_error=self.pb_last_error,
        )

    async def getconn(self, timeout: float | None = None) -> Any:
        # psycopg_pool's getconn() inlined (its body up to _getconn_with_check_loop): one
        # coroutine frame per checkout instead of two, and its deadline clock read is ours
        guard = self._pb_guard
        # other loop, or a forked child (never opened: psycopg_pool says so itself)
        if guard.loop is not get_running_loop() and (guard.loop is not None or guard.forked):
            raise guard.error()
        if self._closed:  # psycopg_pool's own flag (its ``closed`` property costs a call)
            raise PoolClosed(f"pool {self.pb_config.name!r} is closed")
        if timeout is None:
            timeout = self.timeout
        rec = self.pb_recorder
        t0 = monotonic()
        _pool_logger.info("connection requested from %r", self.name)
        self._stats[self._REQUESTS_NUM] += 1
        rec.pending += 1
        try:
            if self._check is None:
                # psycopg_pool's _getconn_with_check_loop() without a check: one attempt,
                # its remaining time still ``timeout`` (t0 was read just above)
                conn = await self._getconn_unchecked(timeout)
                _pool_logger.info("connection given by %r", self.name)
            else:
                # the acquire deadline is read only by the bounded pre-ping (_pb_check)
                token = _ACQUIRE_DEADLINE.set(t0 + timeout)
                try:
                    conn = await self._getconn_with_check_loop(t0 + timeout)
                finally:
                    _ACQUIRE_DEADLINE.reset(token)
        except psycopg_pool.PoolTimeout as exc:
            rec.record_timeout()
            await self.pb_hooks.emit("on_timeout", self._pb_event(None))
            waited = monotonic() - t0
            # the cause psycopg_pool's getconn() would raise (the global timeout)
            cause = psycopg_pool.PoolTimeout(f"couldn't get a connection after {timeout:.2f} sec")
            cause.__cause__ = exc
            raise PoolTimeout(self.pb_diagnostics(waited, timeout)) from cause
        except psycopg_pool.TooManyRequests as exc:
            rec.record_refused()
            config = self.pb_config
            raise TooManyRequests(
                f"pool {config.name!r}: {config.max_waiting} callers already "
                f"wait (max_waiting={config.max_waiting})"
            ) from exc
        except psycopg_pool.PoolClosed as exc:
            raise PoolClosed(f"pool {self.pb_config.name!r} is closed") from exc
        finally:
            rec.pending -= 1
        now = monotonic()
        rec.record_checkout(now - t0)
        try:
            entry = self._pb_conns[id(conn)]
        except KeyError:  # not opened through _pb_configure: adopt it
            entry = self._pb_conns[id(conn)] = _Conn(conn, _server_id(conn))
        entry.out_since = now
        leaks = self.pb_leaks
        if leaks.timeout is not None:  # leak tracking off: not even a call
            entry.lease = leaks.checkout(conn, entry.server_id, now - entry.created)
        emit = self._pb_emit_checkout
        if emit is not None:
            try:
                pending = emit(entry.server_id, now - entry.created, None, conn)
                if pending is not None:  # an async hook (a sync one cannot send SQL)
                    await pending
                    await _settle_quietly(conn, self.pb_config.name)
            except BaseException:  # cancelled inside an async hook: the caller gets nothing
                self._pb_checkin(entry, now)
                self._pb_abandon(conn)
                raise
        return conn

    async def putconn(self, conn: Any) -> None:
        try:
            entry = self._pb_conns[id(conn)]
        except KeyError:
            entry = None
        since = None if entry is None else entry.out_since
        if entry is None or since is None:  # not ours to count (or closed at close)
            await super().putconn(conn)
            return
        held = self._pb_checkin(entry, since)
        # In the caller's task, not a shielded one (a task per release cost more than the
        # rest of it): an interruption at any await below is handled by _pb_abandon.
        try:
            pgconn = conn.pgconn
            if pgconn.transaction_status in _DIRTY:
                # reset="rollback" ourselves: psycopg_pool would do it too, with a warning log.
                # Bounded (on a stalled link it would never return): _within() inlined, on
                # the pool's shared timer (a loop timer each would cost ~3 % of a query).
                deadline = self._pb_deadlines().arm(
                    self.pb_config.connect_timeout, partial(_cut, pgconn)
                )
                try:
                    await conn.rollback()
                except Exception:
                    failed = True
                else:
                    failed = deadline.fired
                    if failed:  # the answer raced the cut: the socket is dead all the same
                        pgconn.finish()
                finally:
                    deadline.cancel()
                if failed:
                    with contextlib.suppress(Exception):
                        await conn.close()
            emit = self._pb_emit_checkin
            if emit is not None:
                # after the rollback, so what the hook undoes or sets is not rolled back
                pending = emit(entry.server_id, since + held - entry.created, held, conn)
                if pending is not None:  # an async hook (a sync one cannot send SQL)
                    await pending
                    await _settle_quietly(conn, self.pb_config.name)
            # psycopg_pool's putconn() inlined, with its _maybe_close_connection() and
            # _putconn(): one coroutine frame per checkin where psycopg_pool has three
            self._check_pool_putconn(conn)
            _pool_logger.info("returning connection to %r", self.name)
            if self._closed:
                await self._close_connection(conn)
            elif self._reset:  # psycopg_pool resets in a background task
                self.run_task(ReturnConnection(self, conn, from_getconn=False))
            elif conn.pgconn.transaction_status == _UNKNOWN:
                await self._pb_return_broken(conn, False)
            else:  # what our _return_connection() does, without its call
                await super()._return_connection(conn, False)
        except BaseException:
            self._pb_abandon(conn)
            raise

    def _pb_deadlines(self) -> Deadlines:
        """The pool's shared deadline timer on the running loop (made on first use)."""
        loop = get_running_loop()
        timers = self._pb_timers
        if timers is None or timers.loop is not loop:
            timers = self._pb_timers = Deadlines(loop)
        return timers

    def _pb_checkin(self, entry: _Conn, since: float) -> float:
        """Count ``entry``, out since ``since``, as given back (stats, leaks, drain); return
        how long it was held."""
        held = monotonic() - since
        entry.out_since = None
        if entry.lease is not None:
            self.pb_leaks.checkin(entry.lease)
            entry.lease = None
        self.pb_recorder.record_checkin(held)
        if self._pb_drained is not None and not self._pb_any_out():
            self._pb_drained.set()
        return held

    def _pb_abandon(self, conn: Any) -> None:
        """A release interrupted mid-way (cancelled during the rollback, a hook or
        psycopg_pool's own return): the connection's protocol state is unknown, so it is
        closed now, without a round trip, and handed to psycopg_pool's background return,
        which counts it as bad and opens a replacement. Never leaked, never reused."""
        if conn in self._pool:  # already back (nothing awaits after that): keep it
            return
        with contextlib.suppress(Exception):
            conn.pgconn.finish()
        self.run_task(ReturnConnection(self, conn, from_getconn=False))

    def _pb_any_out(self) -> bool:
        return any(r.out_since is not None for r in self._pb_conns.values())

    # -- open / close ---------------------------------------------------------------------
    async def open(self, wait: bool = False, timeout: float = 30.0) -> None:
        self._pb_guard.bind()
        if wait:  # warm-up (also Tortoise's): an unreachable server is one ConnectError
            await self._pb_warm.run(super().open(wait=True, timeout=timeout), close=self.close)
        else:
            await super().open(wait=wait, timeout=timeout)
        leak_timeout = self.pb_leaks.timeout
        if leak_timeout is not None and self._pb_leak_task is None:
            self._pb_leak_task = asyncio.create_task(self._pb_watch_leaks(leak_timeout))

    async def pb_open(self) -> None:
        """Open and wait for ``min_size`` connections (up to acquire_timeout); on failure
        close again and raise ConnectError chaining the last connection error."""
        await self.open(wait=True, timeout=self.pb_config.acquire_timeout)

    async def pb_rotate(self, config: PoolConfig) -> None:
        """Replace every connection (see :meth:`poolbridge.pool.handle.Pool.rotate`): new
        connections use ``config``'s password (the pool's ``kwargs`` read it); psycopg_pool's
        drain() closes the idle ones now and the checked-out ones when they come back."""
        self._pb_guard.check()
        self.pb_config = config
        self._pb_epoch += 1
        self.pb_last_error = None
        await self.drain()
        await settle(self._pb_rotated, config=config, last_error=lambda: self.pb_last_error)

    def _pb_rotated(self) -> bool:
        """No stale idle connection, and fresh + stale-but-checked-out >= min_size."""
        epoch, conns = self._pb_epoch, self._pb_conns
        for conn in list(self._pool):
            rec = conns.get(id(conn))
            if rec is not None and rec.epoch != epoch:
                return False
        counted = sum(1 for r in conns.values() if r.epoch == epoch or r.out_since is not None)
        return self.closed or counted >= self.min_size

    async def _pb_watch_leaks(self, leak_timeout: float) -> None:
        while True:
            await asyncio.sleep(max(0.01, leak_timeout / 4))
            try:
                await self.pb_leaks.check()
            except Exception:
                logger.exception("pool %r: leak check failed", self.name)

    async def close(self, timeout: float = 5.0) -> None:
        task, self._pb_leak_task = self._pb_leak_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await super().close(timeout)

    async def pb_close(self, timeout: float | None) -> None:
        """Close to new checkouts, drain (wait up to ``timeout`` s, None: ``acquire_timeout``,
        for checked-out connections: psycopg_pool closes them as they come back), then close
        the stragglers — psycopg_pool's own close() leaves them open until returned."""
        if timeout is None:
            timeout = self.pb_config.acquire_timeout
        await self.close()
        if self._pb_any_out() and timeout != 0:
            self._pb_drained = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._pb_drained.wait()
        await self.pb_leaks.report_open()
        for entry in list(self._pb_conns.values()):
            conn, was_used = entry.conn, entry.out_since is not None
            if was_used:
                logger.warning(
                    "pool %r: closing connection %s still checked out at close",
                    self.name, entry.server_id,
                )  # fmt: skip
            with contextlib.suppress(Exception):
                await conn.close()
            await self._pb_forget(conn, was_used=was_used)
