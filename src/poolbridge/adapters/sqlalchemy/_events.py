"""SQLAlchemy pool/dialect event listeners that feed poolbridge's hooks, stats and leaks.

Listeners are registered on ``engine.sync_engine.pool`` after the engine exists, so they
run after the dialect's own connect listeners (type codecs, dialect initialisation) and are
carried over to the pool that ``engine.dispose()`` recreates (SQLAlchemy copies the pool's
dispatch). The checkout and checkin work (stats, leaks, on_checkout/on_checkin) is no event
listener: it runs on every query, so :class:`BridgePool` does it in ``connect()`` and
``_return_conn()``. Counts come from these events and the pool class, never from
``pool.checkedin()``.

Every listener runs synchronously inside SQLAlchemy; where a driver coroutine or an async
hook has to run, it is awaited with ``await_`` in SQLAlchemy's greenlet (on_connect,
on_checkout, the full reset) or run as a background task (on_checkin, on_close).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from time import monotonic, time
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool.base import ConnectionPoolEntry, PoolResetState
from sqlalchemy.util import await_
from sqlalchemy.util.concurrency import in_greenlet

from poolbridge.adapters.sqlalchemy._state import CONNECT_DEADLINE, BridgeState, sever
from poolbridge.adapters.sqlalchemy._translate import CLIENT_GRACE
from poolbridge.drivers.base import raw_scalar
from poolbridge.drivers.psycopg.conninfo import settle_after_hook
from poolbridge.pool.budget import BudgetAtOpen
from poolbridge.pool.loopguard import get_running_loop
from poolbridge.pool.watchdog import StatementWatchdog

__all__ = ["install", "server_id_of"]

logger = logging.getLogger("poolbridge.sqlalchemy")

_sqlite_ids = itertools.count(1)

#: a rollback's entry in :class:`_RollbackBound` once the timer cut its connection
_CUT = float("-inf")


def server_id_of(driver: str, conn: Any) -> int | str | None:
    """The server-side id of a driver connection, without a round trip."""
    if conn is None:
        return None
    if driver == "asyncpg":
        return int(conn.get_server_pid())
    if driver == "psycopg":
        return int(conn.info.backend_pid)
    if driver in ("aiomysql", "asyncmy"):
        return int(conn.thread_id())
    return f"sqlite-{next(_sqlite_ids)}"


def install(engine: AsyncEngine, state: BridgeState) -> None:
    """Register every listener for ``state`` on ``engine``."""
    pool = engine.sync_engine.pool
    config = state.config
    recorder = state.recorder
    hooks = state.hooks
    budget = BudgetAtOpen(config)

    def on_connect(dbapi_conn: Any, rec: ConnectionPoolEntry) -> None:
        sid = server_id_of(state.driver, rec.driver_connection)
        rec.info["poolbridge"] = state.new_meta(sid, rec.info.pop("poolbridge_epoch", None))
        recorder.record_created(max(0.0, time() - getattr(rec, "starttime", time())))
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
            state.live_ids.pop(rec, None)
            raise

    checked_out = state.checked_out
    leaks = state.leaks

    def gone(rec: ConnectionPoolEntry) -> None:
        out = checked_out.pop(rec, None)
        recorder.record_closed(was_used=out is not None)
        if out is not None and leaks is not None:
            leaks.checkin(out[1])
        if hooks.has("on_close"):
            state.fire("on_close", state.event(rec), inline=False)
        state.live_ids.pop(rec, None)
        if out is not None:
            state.checked_in()

    def on_close(dbapi_conn: Any, rec: ConnectionPoolEntry) -> None:
        if rec in state.live_ids:
            gone(rec)

    def on_detach(dbapi_conn: Any, rec: ConnectionPoolEntry) -> None:
        if rec in state.live_ids:
            gone(rec)

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
        rec.info["poolbridge_replace"] = True

    event.listen(pool, "connect", on_connect)
    event.listen(pool, "close", on_close)
    event.listen(pool, "detach", on_detach)
    if config.reset == "full":  # a reset listener costs every checkin an event + PoolResetState
        event.listen(pool, "reset", on_reset)

    if config.statement_timeout is not None and state.driver in ("psycopg", "aiomysql"):
        _install_statement_watchdog(engine, state.driver, config.statement_timeout + CLIENT_GRACE)

    if state.driver != "aiosqlite":
        _bound_rollback(engine, state.driver, config.connect_timeout)

    if state.driver != "aiosqlite":
        native_connect = _driver_connect(state.driver)

        def on_do_connect(
            dialect: Any, rec: Any, cargs: list[Any], cparams: dict[str, Any]
        ) -> None:
            rec.info["poolbridge_epoch"] = state.epoch  # before the credentials are read
            current = state.config  # rotate() may have replaced the password
            pw = current.password
            # a str password of the original config is in the URL already; a provider is
            # called for every connection
            if pw is not None and (current is not config or not isinstance(pw, str)):
                cparams["password"] = await_(current.get_password())
            creator = cparams.get("async_creator_fn", native_connect)
            cparams["async_creator_fn"] = _bounded(creator, config.connect_timeout, state.driver)

        event.listen(engine.sync_engine, "do_connect", on_do_connect)


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
    key = "poolbridge_watchdog"
    watchdog = StatementWatchdog(limit, what=f"sqlalchemy+{driver}")

    def arm(conn: Any, cursor: Any, statement: Any, params: Any, ctx: Any, many: Any) -> None:
        driver_conn = conn.connection.driver_connection
        conn.info[key] = watchdog.arm(lambda: sever(driver, driver_conn))

    def disarm(conn: Any, *args: Any) -> None:
        armed = conn.info.pop(key, None)
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


def _bounded(creator: Any, seconds: float, driver: str) -> Any:
    """``creator`` with the WHOLE connect (TCP, TLS, handshake, auth) bounded by ``seconds``
    (aiomysql and asyncmy bound only the TCP connect themselves), run in its own task.

    A caller cancelled mid-connect must not strand a half-open connection: psycopg, for
    one, leaves the socket open until garbage collection. The connect task is shielded from
    the caller's cancellation; if it still succeeds, the connection is closed at once.
    """

    async def timed(limit: float, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        async with asyncio.timeout(limit):
            return await creator(*args, **kwargs)

    async def connect(*args: Any, **kwargs: Any) -> Any:
        deadline = CONNECT_DEADLINE.get()
        limit = seconds if deadline is None else max(0.001, min(seconds, deadline - monotonic()))
        task = asyncio.ensure_future(timed(limit, args, kwargs))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(lambda t: _close_abandoned(driver, t))
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
