"""SQLAlchemy pool/dialect event listeners that feed poolbridge's hooks, stats and leaks.

Listeners are registered on ``engine.sync_engine.pool`` after the engine exists, so they
run after the dialect's own connect listeners (type codecs, dialect initialisation) and
before any the application adds later; SQLAlchemy carries them over to the pool that
``engine.dispose()`` recreates (the pool class passes its dispatch on). Everything
poolbridge adds to a checkout or checkin is a documented pool event: ``connect``,
``checkout`` (the bounded pre-ping, stats, leak lease, on_checkout), ``checkin`` (stats,
leaks, on_checkin), ``reset`` (a full reset), ``close``/``detach``; the engine's
``do_connect`` bounds each connect and reads the current password. poolbridge's own
per-record state lives in :class:`BridgeState` (keyed by the record), never in
``record.info`` / ``Connection.info``, which are the application's.

Every listener runs synchronously inside SQLAlchemy; where a driver coroutine or an async
hook has to run, it is awaited with ``await_`` in SQLAlchemy's greenlet (on_connect,
on_checkout, the full reset) or run as a background task (on_checkin, on_close).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from time import monotonic, time
from typing import Any

from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool.base import ConnectionPoolEntry, PoolResetState
from sqlalchemy.util import await_
from sqlalchemy.util.concurrency import in_greenlet

from poolbridge.adapters.sqlalchemy._hosts import Route, connect_bound, router
from poolbridge.adapters.sqlalchemy._state import CONNECT_DEADLINE, BridgeState, sever
from poolbridge.drivers.base import client_backstop, raw_scalar, wait_for_slot
from poolbridge.drivers.connect_errors import is_slot_refused
from poolbridge.drivers.psycopg.conninfo import settle_after_hook
from poolbridge.drivers.registry import native_ops
from poolbridge.pool.budget import BudgetAtOpen
from poolbridge.pool.deadlines import Deadlines
from poolbridge.pool.loopguard import get_running_loop
from poolbridge.pool.watchdog import StatementWatchdog

__all__ = ["install", "server_id_of"]

logger = logging.getLogger("poolbridge.sqlalchemy")

#: a rollback's entry in :class:`_RollbackBound` once the timer cut its connection
_CUT = float("-inf")


def server_id_of(driver: str, conn: Any) -> int | str | None:
    """The server-side id of a driver connection, without a round trip (the driver's own
    answer, as the engine records it; SQLite: a process-local number)."""
    if conn is None:
        return None
    return native_ops(driver).local_server_id(conn)


def install(engine: AsyncEngine, state: BridgeState) -> None:
    """Register every listener for ``state`` on ``engine``."""
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect
    config = state.config
    recorder = state.recorder
    hooks = state.hooks
    budget = BudgetAtOpen(config)
    metas = state.metas
    fresh = state.fresh
    waits = state.waits

    def on_connect(dbapi_conn: Any, rec: ConnectionPoolEntry) -> None:
        sid = server_id_of(state.driver, rec.driver_connection)
        metas[rec] = state.new_meta(sid, state.connect_epochs.pop(rec, None))
        fresh.add(rec)  # never handed out yet: its first checkout is not pinged
        recorder.record_created(max(0.0, time() - state.connect_started.pop(rec, time())))
        state.live_ids[rec] = sid
        state.recorded_ids.append(sid)
        try:
            if budget.pending:  # once per engine, before anyone uses the connection
                driver_conn = rec.driver_connection
                # held: slots taken (open + being opened), as the server may count them
                held = max(len(state.live_ids), state.pool.open_slots if state.pool else 0)
                await_(budget.check(lambda sql: raw_scalar(driver_conn, sql), held=held))
            if hooks.has("on_connect"):
                await_(hooks.run_on_connect(state.event(rec)))
                if state.driver == "psycopg":  # keep what it SET past the first rollback
                    await_(settle_after_hook(rec.driver_connection))
        except BaseException:
            # SQLAlchemy closes the connection itself, without a close event
            recorder.record_closed()
            forget(rec)
            raise

    checked_out = state.checked_out
    leaks = state.leaks

    def forget(rec: ConnectionPoolEntry) -> None:
        state.live_ids.pop(rec, None)
        metas.pop(rec, None)
        fresh.discard(rec)
        state.replace.discard(rec)

    def gone(rec: ConnectionPoolEntry) -> None:
        out = checked_out.pop(rec, None)
        recorder.record_closed(was_used=out is not None)
        if out is not None and leaks is not None:
            leaks.checkin(out[1])
        if hooks.has("on_close"):
            state.fire("on_close", state.event(rec), inline=False)
        forget(rec)
        if out is not None:
            state.checked_in()

    def on_close(dbapi_conn: Any, rec: ConnectionPoolEntry) -> None:
        if rec in state.live_ids:
            gone(rec)

    def on_detach(dbapi_conn: Any, rec: ConnectionPoolEntry) -> None:
        if rec in state.live_ids:
            gone(rec)

    pre_ping = config.pre_ping
    ping_ok = _Pinger(state, dialect).ok

    def on_checkout(dbapi_conn: Any, rec: ConnectionPoolEntry, proxy: Any) -> None:
        """Pre-ping a reused connection (bounded in time), then count the checkout, track
        it for leaks and run on_checkout. A DisconnectionError makes SQLAlchemy replace
        the connection and check out again; any other failure or a cancellation makes it
        invalidate the connection and return it to the pool."""
        if rec in fresh:
            fresh.discard(rec)
        elif pre_ping and not ping_ok(dbapi_conn, rec, waits.get(rec, 0.0)):
            raise sa_exc.DisconnectionError("pre-ping: the connection is gone")
        now = monotonic()
        prev = checked_out.get(rec)
        if prev is None:
            recorder.record_checkout(waits.pop(rec, 0.0))
        elif leaks is not None:
            # dispatched again: a later listener raised DisconnectionError and SQLAlchemy
            # replaced the connection; the checkout is counted once, the lease renewed
            leaks.checkin(prev[1])
        checked_out[rec] = (now, None if leaks is None else state.lease(rec))
        emit = state.emit_checkout
        if emit is not None:
            state.fire_hot(emit, rec, now, None, inline=True)

    def on_checkin(dbapi_conn: Any, rec: ConnectionPoolEntry) -> None:
        """A connection comes back (after the reset-on-return): stats, leaks, on_checkin.

        An async on_checkin runs as a task (this may run while a cancellation unwinds:
        awaiting here could abort the checkin); the pool hands the connection to nobody
        until it ends (:attr:`BridgeState.returning`)."""
        out = checked_out.pop(rec, None)
        if out is None:
            # its checkout failed before the checkout listener finished (a listener raised
            # or was cancelled, a reconnect failed): nobody took the wait _do_get noted
            waits.pop(rec, None)
            return
        now = monotonic()
        held = now - out[0]
        recorder.record_checkin(held)
        if leaks is not None:
            leaks.checkin(out[1])
        emit = state.emit_checkin
        if emit is not None and dbapi_conn is not None:
            task = state.fire_hot(emit, rec, now, held, inline=False)
            if task is not None and not task.done():
                state.returning[rec] = task
        if state.draining is not None:
            state.checked_in()

    def on_reset(dbapi_conn: Any, rec: ConnectionPoolEntry, reset_state: PoolResetState) -> None:
        if config.reset != "full" or reset_state.terminate_only:
            return
        if state.driver == "asyncpg" and reset_state.asyncio_safe and in_greenlet():
            try:
                dbapi_conn.rollback()
                driver_conn = rec.driver_connection
                assert driver_conn is not None
                await_(driver_conn.reset())
                if hooks.has("on_connect"):
                    await_(hooks.run_on_connect(state.event(rec)))
                return
            except Exception:
                pass  # could not reset in place: replace the connection below
        state.replace.add(rec)

    event.listen(pool, "connect", on_connect)
    event.listen(pool, "close", on_close)
    event.listen(pool, "detach", on_detach)
    event.listen(pool, "checkout", on_checkout)
    event.listen(pool, "checkin", on_checkin)
    if config.reset == "full":  # a reset listener costs every checkin an event + PoolResetState
        event.listen(pool, "reset", on_reset)

    if config.statement_timeout is not None and state.driver in ("psycopg", "aiomysql"):
        limit = client_backstop(config)  # drivers/base.py: the rule every stack uses
        assert limit is not None
        _install_statement_watchdog(engine, state.driver, limit)

    if state.driver != "aiosqlite":
        _bound_rollback(engine, state.driver, config.connect_timeout)

    sqlite = state.driver == "aiosqlite"
    native_connect = None if sqlite else _driver_connect(state.driver)
    # several hosts or a target: the connect is routed (_hosts.py); None: the dialect's own
    route = router(config, state.driver)
    bound = connect_bound(config, state.driver)

    def on_do_connect(dialect: Any, rec: Any, cargs: list[Any], cparams: dict[str, Any]) -> None:
        # rec is None when the pool's creator is called directly (SQLAlchemy passes no
        # connection record then): the connection is the caller's, not the pool's
        if rec is not None:
            state.connect_epochs[rec] = state.epoch  # before the credentials are read
            state.connect_started[rec] = time()
        if sqlite:
            return
        current = state.config  # rotate() may have replaced the password
        pw = current.password
        # a str password of the original config is in the URL already; a provider is
        # called for every connection
        if pw is not None and (current is not config or not isinstance(pw, str)):
            cparams["password"] = await_(current.get_password())
        creator = cparams.get("async_creator_fn", native_connect)
        cparams["async_creator_fn"] = _bounded(creator, bound, state, route)

    event.listen(engine.sync_engine, "do_connect", on_do_connect)


class _Pinger:
    """The pre-ping of one engine: the dialect's public ``do_ping``, bounded in time.

    SQLAlchemy's own pre-ping waits forever on a stalled link (no byte flows, no error
    comes), so the engine's pool has it off and the checkout listener pings instead, for at
    most ``connect_timeout`` and never past the caller's acquire deadline: when the bound
    passes without an answer, the connection is cut (:func:`sever`), which makes the pending
    ping fail at once. Cutting instead of cancelling: psycopg answers a cancellation by
    sending a cancel request and waiting for the server again, up to 10 s. SQLite has no
    network to stall: its ping is not cut (that would drop an in-memory database).
    """

    __slots__ = ("_deadlines", "_dialect", "_state")

    def __init__(self, state: BridgeState, dialect: Any) -> None:
        self._state = state
        self._dialect = dialect
        self._deadlines: Deadlines | None = None

    def ok(self, dbapi_conn: Any, rec: ConnectionPoolEntry, waited: float) -> bool:
        """True when alive; a dead or silent connection is cut (the caller raises
        DisconnectionError, SQLAlchemy then replaces it)."""
        state = self._state
        config = state.config
        left = config.acquire_timeout - waited if config.acquire_timeout else config.connect_timeout
        bound = max(0.0, min(config.connect_timeout, left))
        driver_conn = rec.driver_connection
        deadline = None
        if state.driver != "aiosqlite":
            loop = get_running_loop()
            deadlines = self._deadlines
            if deadlines is None or deadlines.loop is not loop:
                deadlines = self._deadlines = Deadlines(loop)
            deadline = deadlines.arm(bound, lambda: _sever_quietly(state.driver, driver_conn))
        try:
            alive = dbapi_conn is not None and bool(self._dialect.do_ping(dbapi_conn))
        except Exception as exc:
            alive = False
            logger.info("pool %r: pre-ping failed: %r", config.name, exc)
        except BaseException:  # cancelled mid-ping: the connection's state is unknown
            _sever_quietly(state.driver, driver_conn)
            raise
        finally:
            if deadline is not None:
                deadline.cancel()
        if deadline is not None and deadline.fired:
            logger.warning(
                "pool %r: pre-ping got no answer within %.2f s: connection cut",
                config.name, bound,
            )  # fmt: skip
            alive = False
        if not alive:
            _sever_quietly(state.driver, driver_conn)
        return alive


def _sever_quietly(driver: str, conn: Any) -> None:
    with contextlib.suppress(Exception):
        sever(driver, conn)


def _bound_rollback(engine: AsyncEngine, driver: str, limit: float) -> None:
    """Bound every rollback of this engine (the Connection's at close, the pool's reset on
    return) by ``limit`` seconds (connect_timeout, as the engine bounds its own).

    On a stalled link (no byte flows, no error comes) a rollback waits forever, and with it
    the caller leaving ``async with engine.connect()``. Both paths call the dialect's
    ``do_rollback``; this engine's dialect gets a wrapper that cuts the connection
    (:func:`sever`) when no answer came in time: the rollback fails with the driver's
    connection error and SQLAlchemy invalidates (replaces) the connection.
    """
    dialect = engine.sync_engine.dialect
    no_answer = getattr(dialect.loaded_dbapi, "OperationalError", ConnectionError)
    bound = _RollbackBound(dialect.do_rollback, driver, limit, no_answer)
    dialect.do_rollback = bound.do_rollback  # type: ignore[method-assign]


class _RollbackBound:
    """The ``do_rollback`` wrapper of one engine (see :func:`_bound_rollback`).

    A rollback runs on every checkin, so its bound costs no Python call: the connection
    goes into a dict of rollbacks in flight (insertion order = deadline order, the bound
    is constant) with its deadline, and one loop timer, armed when none is, cuts those
    still in flight when it fires and re-arms for the earliest left (it fires about once
    per ``limit`` while rollbacks run, like :class:`~poolbridge.pool.deadlines.Deadlines`).
    A cut rollback's entry is set to ``_CUT``; the rollback then raises ``no_answer``.
    """

    __slots__ = ("_driver", "_inflight", "_limit", "_loop", "_no_answer", "_rollback", "_timer")

    def __init__(
        self, rollback: Any, driver: str, limit: float, no_answer: type[Exception]
    ) -> None:
        self._rollback = rollback
        self._driver = driver
        self._limit = limit
        self._no_answer = no_answer
        self._inflight: dict[Any, float] = {}  # connection -> deadline (monotonic) or _CUT
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None

    def do_rollback(self, dbapi_connection: Any) -> None:
        try:
            loop = get_running_loop()
        except RuntimeError:  # garbage-collection cleanup, outside the loop
            self._rollback(dbapi_connection)
            return
        inflight = self._inflight
        if loop is not self._loop:  # first use, or the engine moved to another loop
            self._reset(loop)
        inflight[dbapi_connection] = monotonic() + self._limit
        if self._timer is None:
            self._timer = loop.call_later(self._limit, self._fire)
        try:
            self._rollback(dbapi_connection)
        finally:
            when = inflight.pop(dbapi_connection, 0.0)
        if when == _CUT:  # the answer raced the cut: the connection is dead all the same
            raise self._no_answer(
                f"rollback got no answer within {self._limit:g} s: connection cut"
            )

    def _reset(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._inflight.clear()
        self._loop = loop

    def _fire(self) -> None:
        """The timer: cut every rollback past its deadline, re-arm for the earliest left."""
        self._timer = None
        now = monotonic()
        earliest: float | None = None
        due: list[Any] = []
        for conn, when in self._inflight.items():
            if when == _CUT:
                continue
            if when <= now:
                due.append(conn)
            elif earliest is None or when < earliest:
                earliest = when
        for conn in due:
            self._inflight[conn] = _CUT
            try:
                sever(self._driver, getattr(conn, "driver_connection", None))
            except Exception:
                logger.debug("cutting a connection failed", exc_info=True)
        if earliest is not None and self._loop is not None:
            self._timer = self._loop.call_later(max(0.0, earliest - monotonic()), self._fire)


def _install_statement_watchdog(engine: AsyncEngine, driver: str, limit: float) -> None:
    """Client-side backstop for statement_timeout on drivers without a command timeout.

    psycopg and aiomysql wait forever for an answer that cannot arrive (a stalled network,
    a frozen server): a :class:`~poolbridge.pool.watchdog.StatementWatchdog` armed around
    every cursor execution cuts the socket ``limit`` s later; the caller gets a connection
    error and SQLAlchemy invalidates (replaces) the connection. asyncpg and asyncmy get
    ``command_timeout`` / ``read_timeout`` instead (see the translation table).
    """
    sync_engine = engine.sync_engine
    watchdog = StatementWatchdog(limit, what=f"sqlalchemy+{driver}")
    # per Connection, outside ``Connection.info`` (the application's dict)
    armed_on: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()

    def arm(conn: Any, cursor: Any, statement: Any, params: Any, ctx: Any, many: Any) -> None:
        driver_conn = conn.connection.driver_connection
        armed_on[conn] = watchdog.arm(lambda: sever(driver, driver_conn))

    def disarm(conn: Any, *args: Any) -> None:
        armed = armed_on.pop(conn, None)
        if armed is not None:
            armed.cancel()

    def on_error(context: Any) -> None:
        conn = context.connection
        if conn is not None:
            disarm(conn)

    event.listen(sync_engine, "before_cursor_execute", arm)
    event.listen(sync_engine, "after_cursor_execute", disarm)
    event.listen(sync_engine, "handle_error", on_error)


def _driver_connect(driver: str) -> Any:
    """The driver's own async connect function (what the dialect would call)."""
    import importlib

    if driver == "psycopg":
        return importlib.import_module("psycopg").AsyncConnection.connect
    return importlib.import_module(driver).connect


def _bounded(creator: Any, seconds: float, state: BridgeState, route: Route | None) -> Any:
    """``creator`` with the WHOLE connect (TCP, TLS, handshake, auth) bounded by ``seconds``
    (aiomysql and asyncmy bound only the TCP connect themselves), run in its own task; a
    connection slot the server refuses is waited for within that time
    (:func:`~poolbridge.drivers.base.wait_for_slot`); ``route`` (several hosts) opens it
    through ``creator`` one host at a time.

    A caller cancelled mid-connect must not strand a half-open connection: psycopg, for
    one, leaves the socket open until garbage collection. The connect task is shielded from
    the caller's cancellation; if it still succeeds, the connection is closed at once.

    A connect outside the pool's own slot logic (no CONNECT_DEADLINE: SQLAlchemy reconnecting
    the record of a connection that failed its pre-ping, inside a checkout) that times out
    is that checkout running out of time, so the caller gets PoolTimeout as for any other.
    """
    driver = state.driver

    async def timed(limit: float, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        async with asyncio.timeout(limit):
            if route is not None:
                return await route(creator, limit, args, kwargs)
            return await creator(*args, **kwargs)

    async def connect(*args: Any, **kwargs: Any) -> Any:
        deadline = CONNECT_DEADLINE.get()
        limit = seconds if deadline is None else max(0.001, min(seconds, deadline - monotonic()))
        # a refused slot is waited for within the limit, as by the engine's shims
        task = asyncio.ensure_future(
            wait_for_slot(lambda left: timed(left, args, kwargs), limit, is_slot_refused)
        )
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(lambda t: _close_abandoned(driver, t))
            raise
        except TimeoutError as exc:
            pool = state.pool
            if deadline is None and pool is not None:
                raise pool.checkout_timeout(limit) from exc
            raise

    return connect


def _close_abandoned(driver: str, task: asyncio.Future[Any]) -> None:
    """Close a connection whose requester went away while it was being opened."""
    if task.cancelled() or task.exception() is not None:
        return
    conn = task.result()
    try:
        if driver == "asyncpg":
            conn.terminate()
        elif driver == "psycopg":
            conn.pgconn.finish()
        else:  # aiomysql / asyncmy: close() drops the transport without a round trip
            conn.close()
    except Exception:
        logger.debug("closing an abandoned %s connection failed", driver, exc_info=True)
