"""SQLAlchemy pool/dialect event listeners that feed poolbridge's hooks, stats and leaks.

Listeners are registered on ``engine.sync_engine.pool`` after the engine exists, so they
run after the dialect's own connect listeners (type codecs, dialect initialisation) and
before any the application adds later; SQLAlchemy carries them over to the pool that
``engine.dispose()`` recreates (the pool class passes its dispatch on). What poolbridge
adds to a checkout or checkin beyond the counting (stats and the checked-out bookkeeping
live in the pool class's ``_do_get`` / ``_do_return_conn``) is a documented pool event,
registered only when the config asks for it, since SQLAlchemy dispatches an event per
query and a ``checkout`` listener sends every checkout through its slower reconnect loop:
``checkout`` (the bounded pre-ping, leak lease, on_checkout), ``checkin`` (on_checkin),
``reset`` (a full reset); ``connect`` and ``close``/``detach`` always. The engine's
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

    pre_ping = bool(config.pre_ping)

    def on_connect(dbapi_conn: Any, rec: ConnectionPoolEntry) -> None:
        sid = server_id_of(state.driver, rec.driver_connection)
        metas[rec] = state.new_meta(sid, state.connect_epochs.pop(rec, None))
        if pre_ping:
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
        if waits:
            waits.pop(rec, None)

    def gone(rec: ConnectionPoolEntry) -> None:
        out = checked_out.pop(rec, None)
        recorder.record_closed(was_used=out is not None)
        if out is not None and out[1] is not None and leaks is not None:
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

    bounds = _Bounds(state)
    ping_ok = _Pinger(state, dialect, bounds).ok
    emit_checkout = state.emit_checkout

    def on_checkout(dbapi_conn: Any, rec: ConnectionPoolEntry, proxy: Any) -> None:
        """Pre-ping a reused connection (bounded in time), then track it for leaks and run
        on_checkout (``_do_get`` counted the checkout). A DisconnectionError makes
        SQLAlchemy replace the connection and check out again; any other failure or a
        cancellation makes it invalidate the connection and return it to the pool."""
        if pre_ping:
            waited = waits.pop(rec, 0.0) if waits else 0.0
            if rec in fresh:
                fresh.discard(rec)
            elif not ping_ok(dbapi_conn, rec, waited):
                raise sa_exc.DisconnectionError("pre-ping: the connection is gone")
        out = checked_out.get(rec)
        if out is None:
            # dispatched again: a later listener raised DisconnectionError, the connection
            # closed (counted closed while in use) and SQLAlchemy reconnected the record in
            # place: this is a checkout of the new connection
            now = monotonic()
            recorder.record_checkout(0.0)
            checked_out[rec] = (now, None if leaks is None else state.lease(rec))
        else:
            now = out[0]
            if leaks is not None:
                if out[1] is not None:  # dispatched again on the same connection
                    leaks.checkin(out[1])
                checked_out[rec] = (now, state.lease(rec))
        if emit_checkout is not None:
            state.fire_hot(emit_checkout, rec, now, None, inline=True)

    emit_checkin = state.emit_checkin

    def on_checkin(dbapi_conn: Any, rec: ConnectionPoolEntry) -> None:
        """on_checkin for a connection coming back (after the reset-on-return;
        ``_do_return_conn`` counts the checkin right after this).

        An async on_checkin runs as a task (this may run while a cancellation unwinds:
        awaiting here could abort the checkin); the pool hands the connection to nobody
        until it ends (:attr:`BridgeState.returning`)."""
        out = checked_out.get(rec)
        if out is None or dbapi_conn is None or emit_checkin is None:
            return  # its checkout failed before it was counted, or it was invalidated
        now = monotonic()
        task = state.fire_hot(emit_checkin, rec, now, now - out[0], inline=False)
        if task is not None and not task.done():
            state.returning[rec] = task

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
    # only what the config asks for: each registered listener costs every query an event
    # dispatch (and a checkout listener SQLAlchemy's reconnect loop)
    if pre_ping or leaks is not None or emit_checkout is not None:
        event.listen(pool, "checkout", on_checkout)
    if emit_checkin is not None:
        event.listen(pool, "checkin", on_checkin)
    if config.reset == "full":  # a reset listener costs every checkin an event + PoolResetState
        event.listen(pool, "reset", on_reset)

    if config.statement_timeout is not None and state.driver in ("psycopg", "aiomysql"):
        limit = client_backstop(config)  # drivers/base.py: the rule every stack uses
        assert limit is not None
        _install_statement_watchdog(engine, state.driver, limit)

    if state.driver != "aiosqlite":
        _bound_rollback(engine, bounds, config.connect_timeout)

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


#: a bound longer than this many maintenance intervals waits for the maintenance ticks to
#: arm its loop timer (two ticks, plus one interval for the loop's latency)
_TICKS_AHEAD = 3


class _Bounds:
    """The time bounds of one engine's rollbacks and pre-pings: a keyed
    :class:`~poolbridge.pool.deadlines.Deadlines` on the running loop (one timer for all),
    whose entries are DBAPI connections; one that comes due is cut (:func:`sever`), which
    makes the operation waiting on it fail at once. Cutting instead of cancelling: psycopg
    answers a cancellation by sending a cancel request and waiting for the server again,
    up to 10 s. A new loop (an engine moved by ``dispose(close=False)``) gets new ones.

    No loop timer for the operations that answer in time. A rollback runs at every
    checkin, and the Deadlines' timer, once armed, stays until the bound it was armed for
    (``connect_timeout``) has passed: a busy engine's loop would always have a timer, and
    every loop iteration would compute a select timeout from it (~2k instructions,
    docs/performance.md). So while the engine's maintenance ticks on the ticker
    (:mod:`poolbridge.pool.ticker`) and the bound is longer than three of its intervals,
    :meth:`enter` only notes the due instant in :attr:`waiting`; every tick (on the loop)
    hands the entries that were already there at the previous tick, the same operation
    still unanswered after at least one interval, to the Deadlines, due at the same
    instant. A bound shorter than that, or an engine whose maintenance is not ticking
    (disposed, closed), goes to the Deadlines at once; when the maintenance stops, every
    waiting entry is handed over (:meth:`tick` with ``final``).
    """

    __slots__ = ("_driver", "_loop", "_seen", "_state", "deadlines", "waiting")

    def __init__(self, state: BridgeState) -> None:
        self._state = state
        self._driver = state.driver
        self.deadlines: Deadlines | None = None  # of the loop last used
        # operations under way with a long bound, not yet in the Deadlines: key -> due
        # instant (monotonic), on ``_loop``; ``_seen``: what the last tick found there
        self.waiting: dict[Any, float] = {}
        self._seen: dict[Any, float] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        state.tick_hooks.append(self.tick)

    def on(self, loop: asyncio.AbstractEventLoop) -> Deadlines:
        deadlines = self.deadlines
        if deadlines is None or deadlines.loop is not loop:
            if deadlines is not None:
                deadlines.close()
            deadlines = self.deadlines = Deadlines(loop, self._cut)
        return deadlines

    def enter(self, loop: asyncio.AbstractEventLoop, key: Any, seconds: float) -> None:
        """Cut ``key`` in ``seconds`` unless :meth:`leave` comes first (see the class)."""
        ticking = self._state.ticking
        if (
            ticking is not None
            and ticking.loop is loop
            and seconds > _TICKS_AHEAD * ticking.interval
        ):
            if self._loop is not loop:  # a new loop: what the old one left never ends
                self.waiting.clear()
                self._seen = {}
                self._loop = loop
            self.waiting[key] = monotonic() + seconds
        else:
            self.on(loop).enter(key, seconds)

    def leave(self, key: Any) -> bool:
        """End ``key``'s bound; True when it was due and the connection was cut."""
        if self.waiting.pop(key, None) is not None:
            return False
        deadlines = self.deadlines
        return deadlines is not None and deadlines.leave(key)

    def tick(self, final: bool) -> None:
        """On the loop, at every maintenance tick (``final``: the maintenance stops): hand
        the waiting entries still there since the previous tick (all of them when
        ``final``) to the Deadlines, due when they were due."""
        waiting = self.waiting
        if not waiting:
            if self._seen:
                self._seen = {}
            return
        seen = self._seen
        slow = [key for key, when in waiting.items() if final or seen.get(key) == when]
        if slow:
            assert self._loop is not None
            deadlines = self.on(self._loop)
            now = monotonic()
            for key in slow:
                deadlines.enter(key, waiting.pop(key) - now)
        self._seen = dict(waiting)

    def _cut(self, dbapi_conn: Any) -> None:
        try:
            sever(self._driver, getattr(dbapi_conn, "driver_connection", None))
        except Exception:
            logger.debug("cutting a connection failed", exc_info=True)


class _Pinger:
    """The pre-ping of one engine: the dialect's public ``do_ping``, bounded in time.

    SQLAlchemy's own pre-ping waits forever on a stalled link (no byte flows, no error
    comes), so the engine's pool has it off and the checkout listener pings instead, for at
    most ``connect_timeout`` and never past the caller's acquire deadline: when the bound
    passes without an answer, the connection is cut (:class:`_Bounds`), which makes the
    pending ping fail at once. SQLite has no network to stall: its ping is not cut (that
    would drop an in-memory database).
    """

    __slots__ = ("_bounds", "_dialect", "_state")

    def __init__(self, state: BridgeState, dialect: Any, bounds: _Bounds) -> None:
        self._state = state
        self._dialect = dialect
        self._bounds = bounds

    def ok(self, dbapi_conn: Any, rec: ConnectionPoolEntry, waited: float) -> bool:
        """True when alive; a dead or silent connection is cut (the caller raises
        DisconnectionError, SQLAlchemy then replaces it)."""
        state = self._state
        config = state.config
        left = config.acquire_timeout - waited if config.acquire_timeout else config.connect_timeout
        bound = max(0.0, min(config.connect_timeout, left))
        driver_conn = rec.driver_connection
        bounds = None
        if state.driver != "aiosqlite" and dbapi_conn is not None:
            bounds = self._bounds
            bounds.enter(get_running_loop(), dbapi_conn, bound)
        fired = False
        try:
            alive = dbapi_conn is not None and bool(self._dialect.do_ping(dbapi_conn))
        except Exception as exc:
            alive = False
            logger.info("pool %r: pre-ping failed: %r", config.name, exc)
        except BaseException:  # cancelled mid-ping: the connection's state is unknown
            _sever_quietly(state.driver, driver_conn)
            raise
        finally:
            if bounds is not None:
                fired = bounds.leave(dbapi_conn)
        if fired:
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


def _bound_rollback(engine: AsyncEngine, bounds: _Bounds, limit: float) -> None:
    """Bound every rollback of this engine (the Connection's at close, the pool's reset on
    return) by ``limit`` seconds (connect_timeout, as the engine bounds its own).

    On a stalled link (no byte flows, no error comes) a rollback waits forever, and with it
    the caller leaving ``async with engine.connect()``. Both paths call the dialect's
    ``do_rollback``; this engine's dialect gets a wrapper that keeps the connection in the
    engine's bounds while it rolls back (a dict entry, no object or loop timer per rollback:
    it runs on every checkin; :class:`_Bounds`): when no answer came in time the connection is cut,
    the rollback fails with the driver's connection error (or ``OperationalError`` if the
    answer raced the cut) and SQLAlchemy invalidates (replaces) the connection.
    """
    dialect = engine.sync_engine.dialect
    no_answer = getattr(dialect.loaded_dbapi, "OperationalError", ConnectionError)
    rollback = dialect.do_rollback

    def do_rollback(dbapi_connection: Any) -> None:
        try:
            loop = get_running_loop()
        except RuntimeError:  # garbage-collection cleanup, outside the loop
            rollback(dbapi_connection)
            return
        bounds.enter(loop, dbapi_connection, limit)
        try:
            rollback(dbapi_connection)
        finally:
            fired = bounds.leave(dbapi_connection)
        if fired:  # the answer raced the cut: the connection is dead all the same
            raise no_answer(f"rollback got no answer within {limit:g} s: connection cut")

    dialect.do_rollback = do_rollback  # type: ignore[method-assign]


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
