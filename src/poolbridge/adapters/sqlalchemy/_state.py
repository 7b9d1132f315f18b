"""What one poolbridge-managed SQLAlchemy engine shares across its pool generations.

``engine.dispose()`` replaces ``engine.pool`` with ``pool.recreate()``; hooks, stats, leak
tracking, the closed flag and the maintenance must survive that, so they live here and
every :class:`BridgePool` generation points at the same BridgeState.

The maintenance (one per engine, on the loop the engine was created on) refills to
``min_size``, closes idle connections above ``min_size`` after ``max_idle``, replaces
connections past their lifetime (and, with ``host_recheck_interval``, on a fallback host)
and reports leaks. It keeps no timer in the loop: the process-wide ticker
(:mod:`poolbridge.pool.ticker`) posts a tick every interval, and a tick, or a kick (a slot
was freed), runs one pass in a short task when there is work. A timer armed for the
engine's whole life would make every iteration of a busy loop compute a select timeout
(~2k instructions, docs/performance.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import traceback
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from time import monotonic
from typing import TYPE_CHECKING, Any

from sqlalchemy.pool.base import ConnectionPoolEntry
from sqlalchemy.util.concurrency import greenlet_spawn

from poolbridge.config.model import PasswordProvider, PoolConfig
from poolbridge.drivers.psycopg.conninfo import settle_after_hook
from poolbridge.drivers.registry import native_ops
from poolbridge.errors import PoolClosed
from poolbridge.pool.hooks import ConnectionEvent, Emitter, HookName, HookRunner
from poolbridge.pool.leaks import LeakTracker, Lease
from poolbridge.pool.lifetime import lifetime, maintenance_interval
from poolbridge.pool.loopguard import LoopGuard, get_running_loop
from poolbridge.pool.rotation import settle, with_password
from poolbridge.pool.stats import StatsRecorder
from poolbridge.pool.ticker import Tick, schedule

if TYPE_CHECKING:
    from poolbridge.adapters.sqlalchemy._pool import BridgePool

__all__ = ["CONNECT_DEADLINE", "BridgeState", "ConnMeta", "sever"]

#: monotonic instant by which the connection being opened must exist (the acquirer's
#: acquire deadline); read by the connect wrapper to bound each attempt
CONNECT_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "poolbridge_connect_deadline", default=None
)

logger = logging.getLogger("poolbridge.sqlalchemy")


@dataclass(slots=True)
class ConnMeta:
    """Kept in :attr:`BridgeState.metas` for the physical connection of a record (never in
    ``record.info``: that dict, also ``Connection.info``, belongs to the application)."""

    server_id: int | str | None
    opened: float  # monotonic
    deadline: float  # monotonic instant the lifetime (with jitter) ends; inf: no lifetime
    epoch: int = 0  # the state's rotation epoch when the connect started


#: what :attr:`BridgeState.checked_out` keeps per checked-out connection: (monotonic
#: instant of the checkout, leak-tracker lease); a tuple, so recording one calls nothing
Checkout = tuple[float, Lease | None]


def sever(driver: str, conn: Any) -> None:
    """Cut a driver connection now, without a round trip, so an operation stuck on it (a
    stalled network: no byte flows, no error comes) fails at once with the driver's
    connection error (the driver's own rule: :func:`poolbridge.drivers.registry.native_ops`)."""
    if conn is not None:
        native_ops(driver).sever(conn)


def _acquiring_stack() -> str | None:
    """The stack of the task that is acquiring: inside SQLAlchemy's greenlet the current
    stack ends at greenlet_spawn; the parent greenlet's frame chain reaches the user's code."""
    try:
        import importlib

        parent = importlib.import_module("greenlet").getcurrent().parent
        frame = parent.gr_frame if parent is not None else None
    except Exception:
        return None
    if frame is None:
        return None
    return "".join(traceback.format_stack(frame, limit=40))


class BridgeState:
    """Config, hooks, stats and bookkeeping of one engine (see the module docstring)."""

    def __init__(
        self,
        config: PoolConfig,
        *,
        adapter: str,
        driver: str,
        hooks: HookRunner,
        recorder: StatsRecorder,
        memory: bool = False,
    ) -> None:
        self.config = config
        self.adapter = adapter
        self.driver = driver
        self.native = native_ops(driver)  # is_closed / sever / server id: drivers/
        self.hooks = hooks
        self.recorder = recorder
        self.leaks = LeakTracker(config, hooks, adapter) if config.leak_timeout else None
        # the checkout/checkin hooks bound once (None when not registered): fire_hot()
        self.emit_checkout = hooks.emitter("on_checkout", pool=config.name, adapter=adapter)
        self.emit_checkin = hooks.emitter("on_checkin", pool=config.name, adapter=adapter)
        self.closed = False
        # an in-memory SQLite database dies with its connection: never expire or reap it
        self.min_keep = max(config.min_size, 1) if memory else config.min_size
        self.max_idle = None if memory else config.max_idle
        self.lifetime = None if memory else config.max_lifetime
        self.pool: BridgePool | None = None
        self.guard = LoopGuard(config.name)  # bound at start(); checked in BridgePool._do_get
        self.epoch = 0  # bumped by rotate(): connections of older epochs are stale
        self.last_error: BaseException | None = None  # of the last failed refill
        self.checked_out: dict[ConnectionPoolEntry, Checkout] = {}
        self.live_ids: dict[ConnectionPoolEntry, int | str | None] = {}
        # poolbridge's own bookkeeping per record, kept out of ``record.info`` (the
        # application's dict): the connection's metadata, the rotation epoch its connect
        # started in, records to replace at checkin (a reset that could not be done in
        # place), records whose connection was never handed out (no pre-ping), and the
        # on_checkin task a returned connection waits for before anyone gets it
        self.metas: dict[ConnectionPoolEntry, ConnMeta] = {}
        # written at do_connect, taken at connect; weak, as a failed connect takes nothing
        self.connect_epochs: weakref.WeakKeyDictionary[ConnectionPoolEntry, int] = (
            weakref.WeakKeyDictionary()
        )
        self.connect_started: weakref.WeakKeyDictionary[ConnectionPoolEntry, float] = (
            weakref.WeakKeyDictionary()
        )
        self.replace: set[ConnectionPoolEntry] = set()
        self.fresh: set[ConnectionPoolEntry] = set()
        self.returning: dict[ConnectionPoolEntry, asyncio.Task[None]] = {}
        self.recorded_ids: list[int | str | None] = []  # every server id ever opened
        # seconds each caller waited in BridgePool._do_get, taken by the bounded pre-ping
        # (None without pre_ping: nobody reads them)
        self.waits: dict[ConnectionPoolEntry, float] | None = {} if config.pre_ping else None
        self._drained: asyncio.Event | None = None
        # set while shutdown() waits for the last checkin (checked_in() sets it then)
        self.draining: asyncio.Event | None = None
        # the maintenance: the ticker's schedule (None while not started, paused by
        # engine.dispose() or closed), the pass running now, whether it was kicked while
        # it ran (it runs once more), and the backoff after failed passes
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ticking: Tick | None = None
        # also run on the loop at every tick, and with True when the ticks stop (the
        # rollback and pre-ping bounds arm their loop timer there: _events._Bounds)
        self.tick_hooks: list[Callable[[bool], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._again = False
        self._warming = False  # start() is warming up: no pass yet
        self._failures = 0
        self._retry_at = 0.0  # monotonic; no pass before it (after a failed one)
        self._background: set[asyncio.Task[Any]] = set()
        self.handle: Any = None  # the uniform handle, made on demand (handle_of)

    # -- called by the pool class ----------------------------------------------------------
    def attach(self, pool: BridgePool) -> None:
        self.pool = pool
        self.kick()

    def new_meta(self, server_id: int | str | None, epoch: int | None = None) -> ConnMeta:
        now = monotonic()
        deadline = now + lifetime(self.lifetime)  # pool/lifetime.py: with jitter
        return ConnMeta(server_id, now, deadline, self.epoch if epoch is None else epoch)

    def expired(self, rec: ConnectionPoolEntry) -> bool:
        """Past its lifetime, or opened before the last rotate() (BridgePool writes this
        check out in place on its checkout and checkin paths)."""
        meta = self.metas.get(rec)
        if not isinstance(meta, ConnMeta):
            return False
        return meta.epoch != self.epoch or monotonic() >= meta.deadline

    def dead(self, rec: ConnectionPoolEntry) -> bool:
        """Whether the driver already knows this idle connection is gone (no round trip;
        the driver's own rule, as the engine's). A connection that cannot even answer
        that is gone too."""
        conn = rec.driver_connection
        if conn is None:
            return True
        try:
            return self.native.is_closed(conn)
        except Exception:
            return True

    @property
    def in_use(self) -> int:
        return len(self.checked_out)

    def held_ages(self) -> list[float]:
        """Seconds each checked-out connection has been held (for PoolTimeout's message)."""
        now = monotonic()
        return [now - since for since, _ in self.checked_out.values()]

    def kick(self) -> None:
        """Run a maintenance pass now (a slot was freed: maybe refill), on the engine's
        loop only; anywhere else (no loop running: a garbage-collected connection after
        the loop ended) the next tick does it. Nothing while paused or closed."""
        if self._ticking is None:
            return
        try:
            loop = get_running_loop()
        except RuntimeError:
            return
        if loop is self._loop:
            self._run_pass()

    def lease(self, rec: ConnectionPoolEntry) -> Lease | None:
        """Track a connection being checked out for leaks (``leaks`` is on)."""
        assert self.leaks is not None
        ev = self.event(rec)
        return self.leaks.checkout(
            ev.connection, ev.connection_id, ev.age, stack=_acquiring_stack()
        )

    def checked_in(self) -> None:
        """A connection came back: wake shutdown() once none is out (BridgePool's checkin
        path calls this only while :attr:`draining` is set)."""
        if not self.checked_out and self.draining is not None:
            self.draining.set()

    def spawn(self, aw: Awaitable[Any]) -> asyncio.Task[None] | None:
        """Run ``aw`` on the loop in the background (kept referenced; awaited at close)."""

        async def run() -> None:
            await aw

        try:
            task = asyncio.get_running_loop().create_task(run())
        except RuntimeError:  # no loop (interpreter shutdown): nothing can run it
            if asyncio.iscoroutine(aw):
                aw.close()
            return None
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def close_later(self, rec: ConnectionPoolEntry) -> None:
        self.spawn(greenlet_spawn(rec.close))

    def event(self, rec: ConnectionPoolEntry, *, held: float | None = None) -> ConnectionEvent:
        meta = self.metas.get(rec)
        sid = meta.server_id if isinstance(meta, ConnMeta) else self.live_ids.get(rec)
        age = monotonic() - meta.opened if isinstance(meta, ConnMeta) else 0.0
        return ConnectionEvent(
            pool=self.config.name,
            adapter=self.adapter,
            connection_id=sid,
            age=age,
            held=held,
            connection=rec.driver_connection,
        )

    def fire(
        self, name: HookName, event: ConnectionEvent, *, inline: bool
    ) -> asyncio.Task[None] | None:
        """Run a non-connect hook from a sync SQLAlchemy event.

        A sync hook runs now. An async hook is awaited in place when ``inline`` and we are in
        SQLAlchemy's greenlet, otherwise it runs as a background task, which is returned
        (checkin/close events also run while a cancellation unwinds: awaiting there could
        abort the checkin; the pool class hands a connection whose on_checkin task still
        runs to nobody until it ends). On psycopg, what an async checkout/checkin hook's SQL
        opened is committed (:func:`settle_after_hook`).
        """
        aw = self.hooks.emit_sync(name, event)
        if aw is None:
            return None
        settle = name in ("on_checkout", "on_checkin")
        return self._pending(aw, event.connection, settle=settle, inline=inline)

    def fire_hot(
        self,
        emit: Emitter,
        rec: ConnectionPoolEntry,
        now: float,
        held: float | None,
        *,
        inline: bool,
    ) -> asyncio.Task[None] | None:
        """:meth:`fire` for on_checkout/on_checkin, through the hook's emitter (built once,
        see HookRunner.emitter): a sync hook costs one event and two calls; ``now`` is the
        listener's own clock reading (no second one)."""
        meta = self.metas.get(rec)
        if isinstance(meta, ConnMeta):
            sid, age = meta.server_id, now - meta.opened
        else:
            sid, age = self.live_ids.get(rec), 0.0
        conn = rec.driver_connection
        aw = emit(sid, age, held, conn)
        if aw is None:
            return None
        return self._pending(aw, conn, settle=True, inline=inline)

    def _pending(
        self, aw: Awaitable[None], conn: Any, *, settle: bool, inline: bool
    ) -> asyncio.Task[None] | None:
        """Await an async hook's work in place (``inline``, in the greenlet) or spawn it."""
        from sqlalchemy.util import await_
        from sqlalchemy.util.concurrency import in_greenlet

        if settle and self.driver == "psycopg":
            aw = self._settled(aw, conn)
        if inline and in_greenlet():
            await_(aw)
            return None
        return self.spawn(aw)

    async def _settled(self, aw: Awaitable[None], conn: Any) -> None:
        await aw
        try:
            await settle_after_hook(conn)
        except Exception as exc:
            logger.warning("pool %r: committing what a hook did failed: %r", self.config.name, exc)

    def fire_timeout(self) -> None:
        if self.hooks.has("on_timeout"):
            ev = ConnectionEvent(pool=self.config.name, adapter=self.adapter, connection_id=None)
            self.fire("on_timeout", ev, inline=False)

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Warm up to min_size (concurrently) and start the maintenance. The schedule is
        registered first, so the warm-up's rollbacks find it (their bounds arm no loop
        timer, see :attr:`tick_hooks`); no pass runs before the warm-up has ended."""
        self._bind()
        self._start_ticking()
        self._warming = True
        try:
            await self.warm_up()
        finally:
            self._warming = False

    async def warm_up(self) -> None:
        """Open min_size connections concurrently; the first failure is raised."""
        pool = self._current()
        n = max(0, self.min_keep - pool.open_slots)
        results = await asyncio.gather(
            *(greenlet_spawn(pool.fill_one) for _ in range(n)), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]

    def _bind(self) -> asyncio.AbstractEventLoop:
        """Bind the loop guard, the maintenance and the drain event to the running loop."""
        loop = self._loop = self.guard.bind()
        self._drained = asyncio.Event()
        return loop

    def _start_ticking(self) -> None:
        """Have the ticker run :meth:`_on_tick` on the engine's loop every interval. The
        ticker holds the schedule weakly: an abandoned engine is not kept alive by it."""
        assert self._loop is not None
        self._failures = 0
        self._ticking = schedule(self._loop, self._interval(), self._on_tick)

    @property
    def ticking(self) -> Tick | None:
        """The maintenance's schedule on the ticker (None while it does not run)."""
        return self._ticking

    def _on_tick(self) -> None:
        """On the loop, every interval (posted by the ticker): the tick hooks, then a pass."""
        self._run_hooks(False)
        self._run_pass()

    def _run_hooks(self, final: bool) -> None:
        for hook in self.tick_hooks:
            try:
                hook(final)
            except Exception:
                logger.exception("pool %r: a maintenance tick hook failed", self.config.name)

    def _stop(self) -> asyncio.Task[None] | None:
        """Unregister the schedule (the tick hooks run a last time) and cancel the pass
        running now (returned)."""
        ticking, self._ticking = self._ticking, None
        if ticking is not None:
            ticking.cancel()
            self._run_hooks(True)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
        return task

    def pause(self) -> None:
        """Stop the maintenance (``engine.dispose()``): nothing refills the pool, no task
        outlives the loop and nothing is scheduled until the engine is used again
        (:meth:`resume`)."""
        self._stop()

    def resume(self) -> None:
        """First use of the pool ``engine.dispose()`` made: bind to the running loop (an
        engine moved to a new loop by ``dispose(close=False)`` works there, as stock) and
        start the maintenance again, whose first pass refills to min_size in the background."""
        if self.closed or self._ticking is not None:
            return
        self._bind()
        self._start_ticking()
        self.kick()

    def _current(self) -> BridgePool:
        if self.pool is None:
            raise PoolClosed(f"pool {self.config.name!r} has no SQLAlchemy pool")
        return self.pool

    def _interval(self) -> float:
        return maintenance_interval(self.max_idle, self.lifetime, self.config.leak_timeout)

    def _run_pass(self) -> None:
        """Start a maintenance pass in a task when there is work: idle connections to look
        at, slots to refill or leaks to check (a tick of a busy pool at one task usually
        finds its connection checked out and nothing to do: no task). A pass already
        running runs once more instead; after a failed pass, none until its backoff ends
        (the first tick after it runs one)."""
        if self.closed or self._ticking is None or self._warming:
            return
        if self._task is not None:
            self._again = True
            return
        if self._failures and monotonic() < self._retry_at:
            return
        pool = self.pool
        if pool is None or not (
            pool.idle_count or pool.open_slots < self.min_keep or self.leaks is not None
        ):
            return
        assert self._loop is not None
        self._again = False
        self._task = self._loop.create_task(self._maintain(), name=f"poolbridge-{self.config.name}")

    async def _maintain(self) -> None:
        """Passes until none was asked for meanwhile: reap, refill to min_size, report
        leaks. A failure is logged and backs the next pass off (0.2 s doubling to 2 s)."""
        try:
            while not self.closed:
                self._again = False
                pool = self._current()
                try:
                    # a greenlet per step only when the step has work (each costs more
                    # than the check)
                    if pool.idle_count:
                        await greenlet_spawn(pool.reap, monotonic())
                    while (
                        not self.closed
                        and pool.open_slots < self.min_keep
                        and await greenlet_spawn(pool.fill_one)
                    ):
                        pass
                    if self.leaks is not None:
                        await self.leaks.check()
                    self._failures = 0
                except Exception as exc:
                    self.last_error = exc
                    self._failures += 1
                    self._retry_at = monotonic() + min(2.0, 0.1 * 2**self._failures)
                    logger.warning(
                        "pool %r: maintenance failed (refill/reap); retrying",
                        self.config.name, exc_info=True,
                    )  # fmt: skip
                    return
                if not self._again:
                    return
        finally:
            if self._task is asyncio.current_task():
                self._task = None

    async def rotate(self, password: str | PasswordProvider | None) -> None:
        """Replace every connection (see :meth:`poolbridge.pool.handle.Pool.rotate`): new
        connections use ``password`` (the do_connect listener reads ``self.config``); idle
        ones are closed by the maintenance and refilled, checked-out ones are closed at
        checkin (``expired``)."""
        self.guard.check()
        if self.closed:
            raise PoolClosed(f"pool {self.config.name!r} is closed")
        self.config = with_password(self.config, password)
        self.epoch += 1
        self.last_error = None
        self.kick()
        await settle(self._rotated, config=self.config, last_error=lambda: self.last_error)

    def _rotated(self) -> bool:
        """No stale idle connection, and fresh + stale-but-checked-out >= min_size."""
        pool = self.pool
        if self.closed or pool is None:
            return True
        if any(self.expired(rec) for rec in pool._idle):
            return False
        epoch = self.epoch
        counted = 0
        for rec in self.live_ids:
            meta = self.metas.get(rec)
            fresh = isinstance(meta, ConnMeta) and meta.epoch == epoch
            counted += fresh or rec in self.checked_out
        return counted >= self.min_keep

    async def shutdown(self, dispose: Any, timeout: float | None) -> None:
        """Refuse new acquires, drain up to ``timeout`` s (None: ``acquire_timeout``),
        terminate the rest, dispose."""
        if self.closed:
            return
        self.closed = True
        if timeout is None:
            timeout = self.config.acquire_timeout
        closed_exc = PoolClosed(f"pool {self.config.name!r} is closed")
        pool = self.pool
        if pool is not None:
            pool._queue.close(lambda: PoolClosed(f"pool {self.config.name!r} is closed"))
        task = self._stop()
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)
        if self.checked_out and self._drained is not None and timeout != 0:
            self._drained.clear()
            self.draining = self._drained
            try:
                if self.checked_out:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(timeout):
                            await self._drained.wait()
            finally:
                self.draining = None
        if self.checked_out:
            logger.warning(
                "pool %r: terminating %d connection(s) still checked out at close",
                self.config.name, len(self.checked_out),
            )  # fmt: skip
        if self.leaks is not None:
            await self.leaks.report_open()
        for rec in list(self.checked_out):
            try:
                await greenlet_spawn(rec.invalidate, closed_exc)
            except Exception:
                logger.warning("pool %r: terminating a connection failed", self.config.name)
        await dispose()
        while self._background:  # a finished on_checkin task may close its connection
            await asyncio.gather(*list(self._background), return_exceptions=True)
