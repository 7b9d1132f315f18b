"""psycopg_pool's AsyncConnectionPool with poolbridge's hooks, stats, leak tracking and errors.

psycopg_pool honours every pool knob itself (waiters, timeouts, lifetime jitter, idle
shrinking, reconnection, drain), so the psycopg adapter, Tortoise's psycopg client and
peewee-async's Psycopg3Database all keep it. :class:`PBConnectionPool` adds poolbridge's
surface only through psycopg_pool's documented extension points:

- ``connection_class``: a subclass of the class the caller asked for, whose ``connect``
  times new connections and counts connect errors, and whose ``close`` counts every
  physical connection closed (connection.closed, on_close) — psycopg_pool closes
  connections through ``close()`` wherever it drops a working one;
- ``configure``: the connection budget check, on_connect (with the server pid), then the
  caller's own ``configure``;
- ``check``: ``pre_ping`` (psycopg_pool's ``check_connection``, bounded), then the caller's
  own ``check``;
- ``reset``: only for ``reset="full"`` (DISCARD ALL + on_connect replay), composed with the
  caller's own ``reset``; otherwise psycopg_pool's own rollback of a dirty transaction at
  checkin runs as stock, with its WARNING logs;
- ``getconn`` / ``putconn`` overrides calling ``super()``: checkout/checkin stats and
  hooks, leak tracking, and psycopg_pool's PoolTimeout / TooManyRequests / PoolClosed
  raised as poolbridge's — types that subclass both, so existing ``except
  psycopg_pool.PoolTimeout`` clauses keep working, with psycopg_pool's own exception as
  the ``__cause__``; ``super().putconn()`` runs sheltered from a cancellation of the
  caller, raised once psycopg_pool has the connection back (interrupted, psycopg_pool
  would count a connection nobody holds: docs/internals.md);
- ``drain()`` to replace every connection on ``rotate()``; ``open()``/``close()``/
  ``check()`` overrides calling ``super()``.

An ``on_connect`` failure makes psycopg_pool discard that connection and retry in the
background (its policy for any connection failure), so a caller sees PoolTimeout naming the
last connection error (HookError) rather than HookError itself on this stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from time import monotonic
from typing import Any

import psycopg
import psycopg_pool
from psycopg.pq import TransactionStatus

from poolbridge import errors
from poolbridge.config.model import PasswordProvider, PoolConfig
from poolbridge.drivers.base import libpq_slot_refused, raw_scalar, wait_for_slot
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
from poolbridge.pool.sheltered import sheltered
from poolbridge.pool.stats import StatsRecorder
from poolbridge.pool.ticker import Tick, schedule
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

_DIRTY = (TransactionStatus.INTRANS, TransactionStatus.INERROR)
_IDLE = TransactionStatus.IDLE
_UNKNOWN = TransactionStatus.UNKNOWN
_ACTIVE = TransactionStatus.ACTIVE

ConnectionCallback = Callable[[Any], Awaitable[None]]

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


def _cut_connection(conn: Any) -> None:
    """A keyed deadline of the pool came due: cut ``conn`` (see :func:`_within`)."""
    _cut(conn.pgconn)


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
    broken and psycopg_pool discards it."""
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


def _in_round_trip(pgconn: Any) -> bool:
    """Whether ``pgconn`` waits on the server (psycopg_pool's rollback at checkin)."""
    return bool(pgconn.transaction_status == _ACTIVE)


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def _tracked_connection_class(
    base: type[psycopg.AsyncConnection[Any]], pool: PBConnectionPool
) -> type[psycopg.AsyncConnection[Any]]:
    """A subclass of ``base`` (the ``connection_class`` the caller gave psycopg_pool, maybe
    an ORM's own) reporting its connects and closes to ``pool``."""

    class PBConnection(base):  # type: ignore[valid-type,misc]
        #: set by putconn() on a connection returned inside a transaction: psycopg_pool's
        #: rollback of it at checkin is bounded (see rollback())
        _pb_bound_rollback = False
        _pb_connected_in = 0.0  # seconds the connect took
        #: set by the pool's check when it was cancelled between round trips: getconn()
        #: gives the connection back and raises it
        _pb_cancelled: BaseException | None = None
        _pb_epoch = 0  # the pool's credentials epoch when the connect started

        @classmethod
        async def connect(cls, conninfo: str = "", **kwargs: Any) -> Any:
            while True:
                epoch = pool.pb_epoch
                t0 = monotonic()
                try:
                    # a refused slot is waited for (psycopg_pool would first pause a second)
                    conn = await wait_for_slot(
                        partial(_connect_once, super().connect, conninfo, kwargs),
                        pool.pb_config.connect_timeout,
                        libpq_slot_refused,
                    )
                except BaseException as exc:
                    pool.pb_connect_failed(exc)
                    raise
                if epoch == pool.pb_epoch:
                    conn._pb_connected_in = monotonic() - t0
                    conn._pb_epoch = epoch
                    return conn
                # rotate() ran while it connected (old credentials): connect again with
                # the pool's current conninfo/kwargs
                with contextlib.suppress(Exception):
                    await conn.close()
                conninfo, kwargs = await pool.pb_connect_args(kwargs)

        async def close(self) -> None:
            try:
                await super().close()
            finally:
                if self.closed:  # close_returns=True makes close() a putconn()
                    await pool.pb_forget(self)

        async def rollback(self) -> None:
            if not self._pb_bound_rollback:
                await super().rollback()
                return
            # bounded on the pool's shared timer, keyed by the connection (a loop timer, or
            # even a deadline object, per rollback would cost ~3 % of a query): see _within
            # for what the cut does
            self._pb_bound_rollback = False
            timers = pool._pb_timers
            if timers is None:  # not opened through open(): made on first use
                timers = pool.pb_deadlines()
            timers.enter(self, pool.pb_config.connect_timeout)
            try:
                await super().rollback()
            finally:
                fired = timers.leave(self)
            if fired:  # the answer raced the cut: the socket is dead all the same
                self.pgconn.finish()
                raise psycopg.OperationalError(
                    "rollback at checkin got no answer within "
                    f"{pool.pb_config.connect_timeout:.2f} s"
                )

    PBConnection.__name__ = PBConnection.__qualname__ = f"PB{base.__name__}"
    return PBConnection


async def _connect_once(
    connect: Callable[..., Awaitable[Any]], conninfo: str, kwargs: dict[str, Any], _left: float
) -> Any:
    """One psycopg connect (its own ``connect_timeout`` in ``kwargs`` bounds it)."""
    return await connect(conninfo, **kwargs)


class PBConnectionPool(psycopg_pool.AsyncConnectionPool):
    """An AsyncConnectionPool reporting to a :class:`PsycopgHolder` (hooks, stats, leaks).

    Takes AsyncConnectionPool's arguments plus ``poolbridge=``. The caller's
    ``configure``, ``check``, ``reset`` and ``connection_class`` are kept and composed with
    poolbridge's (see the module docstring); ``name`` defaults to the config's. The pool
    never opens in its constructor: ``open=None``/``False`` both mean "opened by ``await
    pool.open()`` or ``async with pool``" and ``open=True`` is refused (psycopg_pool
    deprecates opening an async pool there, and poolbridge binds the pool to the loop that
    opens it). Mix it in before a subclass of AsyncConnectionPool (Tortoise's) to keep
    that API.
    """

    def __init__(
        self,
        conninfo: Any = "",
        *,
        poolbridge: PsycopgHolder,
        open: bool | None = None,
        configure: ConnectionCallback | None = None,
        check: ConnectionCallback | None = None,
        reset: ConnectionCallback | None = None,
        connection_class: type[psycopg.AsyncConnection[Any]] = psycopg.AsyncConnection,
        **kwargs: Any,
    ) -> None:
        config = poolbridge.config
        if open:
            raise errors.UnsupportedOptionError(
                poolbridge.adapter,
                {"open": "open=True: open the pool with `await pool.open()` or `async with "
                 "pool` (poolbridge binds it to the loop that opens it)"},
            )  # fmt: skip
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
        self.pb_epoch = 0  # bumped by pb_rotate(): older connections are stale
        self._pb_conns: dict[int, _Conn] = {}
        self._pb_guard = LoopGuard(config.name)
        self._pb_budget = BudgetAtOpen(config)  # asks the server once, on the first connection
        self._pb_warm = WarmUpWatch(config, is_permanent_connect_error, ConnectError)
        # leak reports: the ticker's schedule (no timer in the loop, pool/ticker.py) and
        # the check it started last
        self._pb_leak_tick: Tick | None = None
        self._pb_leak_task: asyncio.Task[None] | None = None
        self._pb_drained: asyncio.Event | None = None
        self._pb_tasks: set[asyncio.Task[None]] = set()
        self._pb_timers: Deadlines | None = None  # see pb_deadlines
        self._pb_user_configure = configure
        self._pb_pre_ping = bool(config.pre_ping)
        if self._pb_pre_ping and check is psycopg_pool.AsyncConnectionPool.check_connection:
            check = None  # the same check as pre_ping's, which bounds it: run it once
        self._pb_user_check = check
        self._pb_user_reset = reset
        full_reset = config.reset == "full"
        kwargs.setdefault("name", config.name)
        limit = backstop(config.statement_timeout)
        if limit is not None:  # psycopg has no client-side bound of its own
            connection_class = watched_connection_class(
                connection_class, limit, what=f"pool {config.name!r}"
            )
        super().__init__(
            conninfo,
            open=False,
            connection_class=_tracked_connection_class(connection_class, self),
            configure=self._pb_configure,
            check=self._pb_check if self._pb_pre_ping or check is not None else None,
            reset=self._pb_full_reset if full_reset else reset,
            **kwargs,
        )

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

    def pb_connect_failed(self, exc: BaseException) -> None:
        """A connect attempt failed (called by the connection class and configure)."""
        self.pb_recorder.record_error()
        self.pb_last_error = exc
        self._pb_warm.failure(exc)

    async def pb_connect_args(self, given: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The pool's current ``conninfo`` and ``kwargs`` (each a value or a sync/async
        callable, as psycopg_pool documents them), over ``given``."""
        conninfo = self.conninfo
        if callable(conninfo):
            conninfo = await _maybe_await(conninfo())
        kwargs = self.kwargs
        if callable(kwargs):
            kwargs = await _maybe_await(kwargs())
        return str(conninfo or ""), {**given, **(kwargs or {})}

    async def _pb_configure(self, conn: Any) -> None:
        """psycopg_pool's ``configure``: the caller's configure, the budget check and
        on_connect. A failure closes the connection (psycopg_pool then retries)."""
        try:
            user = self._pb_user_configure
            if user is not None:
                await user(conn)
                if conn.pgconn.transaction_status != _IDLE:
                    # psycopg_pool refuses it, naming the configure function
                    self.pb_last_error = errors.PoolBridgeError(
                        f"configure {user!r} left the connection in a transaction"
                    )
                    self.pb_recorder.record_error()
                    return
            if conn._pb_epoch != self.pb_epoch:
                raise psycopg.OperationalError("credentials rotated while connecting")
            rec = _Conn(conn, _server_id(conn), conn._pb_epoch)
            if self._pb_budget.pending:
                # held: open + being opened (psycopg_pool's pool_size counts both)
                held = max(len(self._pb_conns) + 1, self.get_stats().get("pool_size", 0))
                await self._pb_budget.check(lambda sql: raw_scalar(conn, sql), held=held)
            await self.pb_hooks.run_on_connect(self._pb_event(rec))
            await _settle(conn)
        except BaseException as exc:
            self.pb_connect_failed(exc)
            with contextlib.suppress(Exception):
                await conn.close()
            raise
        self._pb_conns[id(conn)] = rec
        self.pb_recorder.record_created(conn._pb_connected_in)

    async def _pb_full_reset(self, conn: Any) -> None:
        """reset="full": DISCARD ALL (startup options survive it), replay on_connect, then
        the caller's own ``reset``."""
        autocommit = conn.autocommit
        await conn.set_autocommit(True)  # DISCARD ALL cannot run inside a transaction
        try:
            await conn.execute("DISCARD ALL")
        finally:
            await conn.set_autocommit(autocommit)
        await self.pb_hooks.run_on_connect(self._pb_event(self._pb_conns.get(id(conn))))
        await _settle(conn)
        if self._pb_user_reset is not None:
            await self._pb_user_reset(conn)

    async def _pb_check(self, conn: Any) -> None:
        """psycopg_pool's ``check``: pre_ping, then the caller's own check."""
        try:
            if self._pb_pre_ping:
                await self._pb_ping(conn)
            if self._pb_user_check is not None:
                await self._pb_user_check(conn)
        except asyncio.CancelledError as exc:
            if conn.pgconn.transaction_status != _IDLE:  # interrupted mid-round-trip
                await self._pb_check_failed(conn)
                raise
            # interrupted between round trips: a sound connection. Raised here, psycopg_pool
            # would put it back in this cancelled task, and a second cancellation while it
            # waits for its lock there loses the slot: the check passes instead, and
            # getconn() gives the connection back sheltered, then raises this
            conn._pb_cancelled = exc
        except BaseException:
            await self._pb_check_failed(conn)
            raise

    async def _pb_check_failed(self, conn: Any) -> None:
        """A connection that failed its check, or whose round trip was interrupted, is closed:
        psycopg_pool then drops it and orders a replacement without waiting (left open, it
        would put it back in the caller's task, where a cancellation while it waits for its
        lock loses the slot)."""
        with contextlib.suppress(Exception):
            conn.pgconn.finish()
        await self.pb_forget(conn)  # psycopg_pool drops it without close(): count it

    async def _pb_ping(self, conn: Any) -> None:
        """pre_ping: psycopg_pool's check_connection, bounded by ``connect_timeout`` and the
        caller's acquire deadline. Unbounded, it waits forever on a stalled link (no byte
        flows, no error comes), past any acquire timeout; bounded, the socket is shut down
        when the time passes (see _within), the check fails with a connection error and
        psycopg_pool discards the connection and goes on within the caller's deadline."""
        bound = self.pb_config.connect_timeout
        deadline = _ACQUIRE_DEADLINE.get()
        if deadline is not None:
            bound = max(0.0, min(bound, deadline - monotonic()))
        check = psycopg_pool.AsyncConnectionPool.check_connection
        await _within(conn, bound, "pre-ping", lambda: check(conn))

    async def pb_forget(self, conn: Any) -> None:
        """Count a physical connection closed (once; as in use when it was checked out:
        closed by its user, or at close) and fire on_close."""
        rec = self._pb_conns.pop(id(conn), None)
        if rec is None:
            return
        was_used = rec.out_since is not None
        rec.out_since = None
        if rec.lease is not None:
            self.pb_leaks.checkin(rec.lease)
            rec.lease = None
        self.pb_recorder.record_closed(was_used=was_used)
        if was_used and self._pb_drained is not None and not self._pb_any_out():
            self._pb_drained.set()
        if self.pb_hooks.has("on_close"):
            await self.pb_hooks.emit("on_close", self._pb_event(rec))

    def pb_deadlines(self) -> Deadlines:
        """The pool's shared deadline timer (keyed by connection: a due one has its socket
        shut down), made when the pool opens on its loop; psycopg_pool's pool lives on that
        one loop (the loop guard refuses any other), so the hot path asks no loop."""
        timers = self._pb_timers
        if timers is None:
            timers = self._pb_timers = Deadlines(get_running_loop(), _cut_connection)
        return timers

    def pb_server_ids(self) -> list[Any]:
        return [rec.server_id for rec in self._pb_conns.values()]

    async def check(self) -> None:
        """psycopg_pool's check() of the idle connections; the broken ones it drops are
        counted closed."""
        await super().check()
        for rec in list(self._pb_conns.values()):
            if rec.out_since is None and rec.conn.closed:
                await self.pb_forget(rec.conn)

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
        guard = self._pb_guard
        # other loop, or a forked child (never opened: psycopg_pool says so itself)
        if guard.loop is not get_running_loop() and (guard.loop is not None or guard.forked):
            raise guard.error()
        rec = self.pb_recorder
        t0 = monotonic()
        rec.pending += 1
        try:
            if self._pb_pre_ping:
                # the acquire deadline is read only by the bounded pre-ping (_pb_ping)
                limit = self.timeout if timeout is None else timeout
                token = _ACQUIRE_DEADLINE.set(t0 + limit)
                try:
                    conn = await super().getconn(timeout)
                finally:
                    _ACQUIRE_DEADLINE.reset(token)
            else:
                conn = await super().getconn(timeout)
        except psycopg_pool.PoolTimeout as exc:
            rec.record_timeout()
            await self.pb_hooks.emit("on_timeout", self._pb_event(None))
            limit = self.timeout if timeout is None else timeout
            raise PoolTimeout(self.pb_diagnostics(monotonic() - t0, limit)) from exc
        except psycopg_pool.TooManyRequests as exc:
            rec.record_refused()
            config = self.pb_config
            raise TooManyRequests(
                f"pool {config.name!r}: {config.max_waiting} callers already "
                f"wait (max_waiting={config.max_waiting})"
            ) from exc
        except psycopg_pool.PoolClosed as exc:
            raise PoolClosed(f"pool {self.pb_config.name!r}: {exc}") from exc
        finally:
            rec.pending -= 1
        # the pool's check was cancelled between round trips (see _pb_check)
        if conn._pb_cancelled is not None:  # type: ignore[attr-defined]
            await self._pb_give_back_cancelled(conn)
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

    async def putconn(self, conn: Any, *, rollback: bool = False) -> None:
        """psycopg_pool's putconn() with poolbridge's checkin stats, leak tracking and
        on_checkin hook. A connection returned inside a transaction is rolled back by
        psycopg_pool as stock (with its WARNING: that is a caller's mistake there), except

        - with ``rollback=True``: poolbridge's uniform ``acquire()``, whose release rolls
          back by contract (the ``reset`` knob), rolls back here without that warning;
        - before an async on_checkin hook, which gets the connection idle: what the hook
          does is committed after it (see settle_after_hook), and that must not commit the
          caller's transaction.

        Either rollback is bounded by ``connect_timeout`` as psycopg_pool's is (see the
        connection class); a failed one leaves the connection broken and psycopg_pool
        discards it."""
        try:
            entry = self._pb_conns[id(conn)]
        except KeyError:
            entry = None
        since = None if entry is None else entry.out_since
        if entry is None or since is None:  # not ours to count (or closed at close)
            _, cancelled = await sheltered(super().putconn(conn), _in_round_trip, conn.pgconn)
            if cancelled is not None:
                raise cancelled
            return
        # _pb_checkin, written out (a call less per release)
        held = monotonic() - since
        entry.out_since = None
        if entry.lease is not None:
            self.pb_leaks.checkin(entry.lease)
            entry.lease = None
        self.pb_recorder.record_checkin(held)
        if self._pb_drained is not None and not self._pb_any_out():
            self._pb_drained.set()
        # In the caller's task, not a shielded one (a task per release costs more than the
        # rest of it): an interruption before psycopg_pool's checkin is handled by
        # _pb_abandon; psycopg_pool's checkin itself runs sheltered (see below).
        try:
            pgconn = conn.pgconn
            pending = None
            emit = self._pb_emit_checkin
            if emit is not None:  # a sync hook runs here; an async one is awaited below
                pending = emit(entry.server_id, since + held - entry.created, held, conn)
            if pgconn.transaction_status in _DIRTY:
                conn._pb_bound_rollback = True  # whoever rolls it back is bounded
                if rollback or pending is not None:
                    try:  # noqa: SIM105 (suppress() would build an object per release)
                        await conn.rollback()
                    except Exception:  # broken: psycopg_pool drops it
                        pass
            if pending is not None:
                await pending
                await _settle_quietly(conn, self.pb_config.name)
                if pgconn.transaction_status in _DIRTY:
                    conn._pb_bound_rollback = True
            status = pgconn.transaction_status
            # psycopg_pool detaches the connection before it waits for its lock (or closes
            # an expired one before it orders the replacement): interrupted there, it
            # would count a connection nobody holds, for good. So a cancellation is held
            # back until it is done, except during its rollback (a round trip whose
            # cancellation it handles itself, discarding the connection).
            _, cancelled = await sheltered(super().putconn(conn), _in_round_trip, pgconn)
        except BaseException:
            self._pb_abandon(conn)
            raise
        # psycopg_pool has it now: whatever happens below must not give it back again
        if status == _UNKNOWN:  # broken: psycopg_pool drops it without close()
            await self.pb_forget(conn)
        if cancelled is not None:
            raise cancelled

    async def _pb_give_back_cancelled(self, conn: Any) -> None:
        """Give back, sheltered, a connection whose check was cancelled, then raise that
        cancellation (the caller never had it: nothing is counted as checked out)."""
        cancelled, conn._pb_cancelled = conn._pb_cancelled, None
        await sheltered(super().putconn(conn), _in_round_trip, conn.pgconn)
        raise cancelled

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
        """A checkout or release interrupted mid-way (cancelled in a hook, or in the rollback
        before psycopg_pool's checkin): the connection's protocol state is unknown, so its socket is
        closed now, without a round trip, and it is given back to psycopg_pool in a task of
        its own (the caller's task is being cancelled). psycopg_pool discards a connection
        found broken at checkin and opens a replacement: never leaked, never reused."""
        with contextlib.suppress(Exception):
            conn.pgconn.finish()
        task = asyncio.get_running_loop().create_task(self._pb_discard(conn))
        self._pb_tasks.add(task)
        task.add_done_callback(self._pb_tasks.discard)

    async def _pb_discard(self, conn: Any) -> None:
        try:
            await super().putconn(conn)
        except Exception as exc:  # already back in psycopg_pool's hands
            logger.debug("pool %r: returning an interrupted connection: %r", self.name, exc)
        await self.pb_forget(conn)

    def _pb_any_out(self) -> bool:
        return any(r.out_since is not None for r in self._pb_conns.values())

    # -- open / close ---------------------------------------------------------------------
    async def open(self, wait: bool = False, timeout: float = 30.0) -> None:
        loop = self._pb_guard.bind()
        if self._pb_timers is None or self._pb_timers.loop is not loop:
            self._pb_timers = Deadlines(loop, _cut_connection)
        try:
            if wait:  # warm-up (also Tortoise's): an unreachable server is one ConnectError
                await self._pb_warm.run(super().open(wait=True, timeout=timeout), close=self.close)
            else:
                await super().open(wait=wait, timeout=timeout)
        except psycopg_pool.PoolClosed as exc:
            if isinstance(exc, PoolClosed):
                raise
            raise PoolClosed(f"pool {self.pb_config.name!r}: {exc}") from exc
        leak_timeout = self.pb_leaks.timeout
        if leak_timeout is not None and self._pb_leak_tick is None:
            self._pb_leak_tick = schedule(loop, max(0.01, leak_timeout / 4), self._pb_leak_tick_run)

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
        self.pb_epoch += 1
        self.pb_last_error = None
        await self.drain()
        await settle(self._pb_rotated, config=config, last_error=lambda: self.pb_last_error)

    def _pb_rotated(self) -> bool:
        """No stale idle connection, and fresh + stale-but-checked-out >= min_size."""
        epoch, conns = self.pb_epoch, self._pb_conns.values()
        if any(r.epoch != epoch and r.out_since is None for r in conns):
            return False
        counted = sum(1 for r in conns if r.epoch == epoch or r.out_since is not None)
        return self.closed or counted >= self.min_size

    def _pb_leak_tick_run(self) -> None:
        """On the loop, every quarter of leak_timeout (posted by the ticker): a leak check
        in a task (a report may await hooks), unless the previous one still runs."""
        task = self._pb_leak_task
        if task is None or task.done():
            loop = self._pb_guard.loop
            if loop is not None:
                self._pb_leak_task = loop.create_task(self._pb_check_leaks())

    async def _pb_check_leaks(self) -> None:
        try:
            await self.pb_leaks.check()
        except Exception:
            logger.exception("pool %r: leak check failed", self.name)

    async def close(self, timeout: float = 5.0) -> None:
        tick, self._pb_leak_tick = self._pb_leak_tick, None
        if tick is not None:
            tick.cancel()
        task, self._pb_leak_task = self._pb_leak_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await super().close(timeout)
        if self._pb_timers is not None:
            self._pb_timers.close()

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
            await self.pb_forget(conn)  # when close() failed
