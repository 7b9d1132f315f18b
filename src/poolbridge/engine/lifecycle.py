"""The engine's state and background lifecycle: opening, closing and maintenance.

:class:`EngineCore` holds every piece of bookkeeping of one pool and the work that happens
off the caller's path: opening connections (with retry, outside any lock, never above
max_size counting connections being opened or closed), retiring them (in the background
unless they must be terminated at once), closing the pool, and maintenance (lifetime by
age, idle reaping above min_size, dead idle connections, leaks, refill), run every interval
by the process-wide ticker (:mod:`poolbridge.pool.ticker`) so that no timer of the pool's
stays in the loop's heap while it is open.
:class:`poolbridge.engine.checkout.Engine` adds the checkout/checkin path on top.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from time import monotonic
from typing import Any

from poolbridge.config.model import PasswordProvider, PoolConfig
from poolbridge.engine.shim import DriverShim
from poolbridge.errors import PoolClosed
from poolbridge.pool.budget import BudgetAtOpen
from poolbridge.pool.hooks import ConnectionEvent, HookRunner
from poolbridge.pool.leaks import LeakTracker
from poolbridge.pool.lifetime import LIFETIME_JITTER, idle_too_long, lifetime, maintenance_interval
from poolbridge.pool.loopguard import LoopGuard
from poolbridge.pool.retry import connect_with_retry
from poolbridge.pool.rotation import settle, with_password
from poolbridge.pool.stats import StatsRecorder
from poolbridge.pool.ticker import Tick, schedule
from poolbridge.pool.waiters import WaiterQueue

__all__ = ["LIFETIME_JITTER", "ConnRecord", "DriverShim", "EngineCore"]

logger = logging.getLogger("poolbridge.engine")

_INF = float("inf")


class ConnRecord:
    """The engine's record of one physical connection."""

    __slots__ = (
        "broken",
        "checkout_at",
        "created",
        "epoch",
        "expires",
        "fresh",
        "handed",
        "idle_since",
        "lease",
        "native",
        "server_id",
    )  # fmt: skip

    def __init__(
        self, native: Any, server_id: int | str | None, created: float, life: float, epoch: int = 0
    ) -> None:
        self.native = native
        self.epoch = epoch  # the engine's rotation epoch when the connect started
        self.server_id = server_id
        self.created = created
        self.expires = created + life
        self.idle_since = created
        self.checkout_at: float | None = None
        self.lease: Any = None
        self.fresh = True  # never handed out yet: pre_ping can skip it
        self.broken = False
        # already done with the native connection as its result: what ``async with
        # acquire()`` awaits after an idle checkout (cheaper than a coroutine)
        self.handed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.handed.set_result(native)


class EngineCore:
    """Bookkeeping and background lifecycle of one pool (see the module docstring)."""

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
        self._idle: deque[ConnRecord] = deque()
        # FIFO hand-off, bounded waits, max_waiting (pool/waiters.py); the deque bound
        # once for the hot path's "anyone waiting?" test
        self._queue: WaiterQueue[ConnRecord] = WaiterQueue(
            config.name, config.max_waiting, recorder, self._release
        )
        self._waiters = self._queue.waiters
        self._conns: dict[int, ConnRecord] = {}  # id(native) -> record, open connections only
        self._opening = 0
        self._closing = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._connects: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        # threading.get_ident() of the loop's thread, set at open() (not "_thread": mypyc
        # names the C field after the attribute, and "__thread" is a C keyword)
        self._loop_thread = 0
        self._guard = LoopGuard(config.name)
        self._epoch = 0  # bumped by expire_all(): older connections are stale
        self._last_error: BaseException | None = None  # of the last failed connect
        self._maintenance: asyncio.Task[None] | None = None  # a pass that awaits (leaks)
        self._ticking: Tick | None = None  # the ticker's schedule, while open
        self._drained: asyncio.Event | None = None
        self._close_done: asyncio.Future[None] | None = None
        self._leaks = LeakTracker(config, hooks, adapter) if config.leak_timeout else None
        self._full_reset = config.reset == "full"
        self._pre_ping = config.pre_ping
        self._budget = BudgetAtOpen(config)  # asks the server once, on the first connection
        # None when the hook is not registered: then no event is built at all
        self._emit_checkout = hooks.emitter("on_checkout", pool=self.name, adapter=adapter)
        self._emit_checkin = hooks.emitter("on_checkin", pool=self.name, adapter=adapter)
        # the synchronous fast path of checkout/checkin applies (engine/checkout.py); a
        # sync on_checkout/on_checkin hook runs inside it
        self._plain_checkout = not self._pre_ping and self._leaks is None
        self._plain_checkin = not self._full_reset and self._leaks is None
        # what the fast checkin returns for ``async with`` to await (made done at open())
        self._done: asyncio.Future[None]
        # bound once: asked at every checkout (is_closed) and checkin (reusable: open and
        # outside a transaction, in one call). The shim's plain functions when it has them
        # for this config (drivers/state.py); a third-party shim may lack reusable()
        self._is_closed: Callable[[Any], bool] = driver.is_closed
        self._reusable: Callable[[Any], bool] = getattr(driver, "reusable", None) or (
            lambda conn: not driver.is_closed(conn) and driver.in_transaction(conn) is False
        )
        state_checks = getattr(driver, "state_checks", None)
        plain = state_checks(config) if state_checks is not None else None
        if plain is not None:
            self._is_closed, self._reusable = plain

    @property
    def size(self) -> int:
        """Open connections plus those being opened or closed (never above max_size)."""
        return len(self._conns) + self._opening + self._closing

    def _release(self, c: ConnRecord) -> None:
        """Hand ``c`` to the oldest waiter or make it idle (the Engine implements it)."""
        raise NotImplementedError

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
        if self._waiters:  # a slot freed while callers wait (e.g. a replaced connection)
            self._grow(deadline)

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
            self._last_error = exc
            logger.warning("pool %r: could not open a connection: %r", self.name, exc)
            refused = getattr(self.driver, "is_slot_refused", None)
            if refused is not None and refused(exc):
                # the server is out of connection slots (the driver waited for one within
                # the connect's time): as for an exhausted pool, waiters wait on for a
                # connection coming back or a slot freed until their own deadline, then
                # get PoolTimeout, never the driver's refusal
                last = self._queue.last_deadline()  # not past the last waiter
                if self._waiters and last > monotonic() + 0.05 and not self.closed:
                    self._grow(last)
                return
            # a failing server must never wedge waiters: the oldest one gets the error
            self._queue.fail_oldest(exc)
            if self._waiters and not self.closed:
                self._grow(monotonic() + self.config.acquire_timeout)
            return
        self._opening -= 1
        self._conns[id(c.native)] = c
        if c.epoch != self._epoch:  # opened with the credentials expire_all() replaced
            self._retire(c)
            return
        self._release(c)

    async def _open_one(self, deadline: float) -> ConnRecord:
        """Open one connection (with retry), record its server id, run on_connect."""
        config = self.config  # read per connect: rotate() may have changed the password
        driver = self.driver
        epoch = self._epoch
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
            # driver knowledge: a wrong password or unknown database is not retried
            is_retryable=getattr(driver, "is_retryable_connect_error", None),
        )
        created = monotonic()
        self.recorder.record_created(created - t0)
        try:
            server_id = await driver.server_id(native)
            scalar = getattr(driver, "scalar", None)  # a third-party shim may not have it
            if self._budget.pending and scalar is not None:
                # held: open + being opened (this one too): the server may count them already
                held = len(self._conns) + self._opening
                await self._budget.check(lambda sql: scalar(native, sql), held=held)
            c = ConnRecord(native, server_id, created, lifetime(config.max_lifetime), epoch)
            if epoch != self._epoch:  # expire_all() ran while it connected: never hand out
                c.expires = -_INF
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
    def _retire(self, c: ConnRecord, *, terminate: bool = False) -> None:
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

    async def _emit_close(self, c: ConnRecord) -> None:
        await self.hooks.emit("on_close", self._event(c, monotonic()))

    async def _close_conn(self, c: ConnRecord, was_used: bool) -> None:
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
        self._queue.close(lambda: PoolClosed(f"pool {self.name!r} was closed"))
        if self._ticking is not None:
            self._ticking.cancel()
            self._ticking = None
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

    # -- rotation -----------------------------------------------------------------------
    def expire_all(self) -> None:
        """Replace every connection: idle ones are closed now (and refilled to min_size),
        checked-out ones at checkin, ones being opened are never handed out. No caller
        waits longer than for a new connection."""
        self._epoch += 1
        for c in self._conns.values():
            c.expires = -_INF
        while self._idle:
            self._retire(self._idle.popleft())
        self._refill()

    async def rotate(self, password: str | PasswordProvider | None = None) -> None:
        """:meth:`expire_all` after switching to ``password`` (None: keep it; a provider is
        called for every new connection), then wait until the idle connections are replaced
        (PoolTimeout after acquire_timeout naming the last connect error)."""
        if self._guard.loop is not asyncio.get_running_loop():
            raise self._guard.error()
        if self.closed:
            raise PoolClosed(f"pool {self.name!r} is closed")
        self.config = with_password(self.config, password, self.adapter)
        self._last_error = None
        self.expire_all()
        await settle(self._rotated, config=self.config, last_error=lambda: self._last_error)

    def _rotated(self) -> bool:
        """No stale idle connection, and fresh + stale-but-checked-out >= min_size."""
        epoch = self._epoch
        if any(c.epoch != epoch for c in self._idle):
            return False
        counted = sum(
            1 for c in self._conns.values() if c.epoch == epoch or c.checkout_at is not None
        )
        return self.closed or counted >= self._min

    # -- maintenance --------------------------------------------------------------------
    def _maintenance_interval(self) -> float:
        config = self.config
        return maintenance_interval(config.max_idle, config.max_lifetime, config.leak_timeout)

    def _start_maintenance(self) -> None:
        """Have the ticker run :meth:`_tick` on the pool's loop every interval (at open).

        Not ``asyncio.sleep`` in a task: a timer scheduled for the pool's whole life makes
        every iteration of a busy loop compute a select timeout (pool/ticker.py). The
        ticker holds the schedule weakly: an abandoned engine is collected as before."""
        assert self._loop is not None
        self._ticking = schedule(self._loop, self._maintenance_interval(), self._tick)

    def _tick(self) -> None:
        """On the loop, every interval: one maintenance pass. Synchronous, with no task,
        unless leaks are tracked (their report may await hooks): then a task runs the whole
        pass, and a tick while the previous one still runs does nothing."""
        if self.closed:
            return
        if self._leaks is not None:
            task = self._maintenance
            if task is None or task.done():
                assert self._loop is not None
                self._maintenance = self._loop.create_task(self._maintain())
            return
        try:
            self._reap(monotonic())
            self._refill()
        except Exception:
            logger.exception("pool %r: maintenance failed", self.name)

    async def _maintain(self) -> None:
        """One maintenance pass in a task; a failure is logged (the next tick runs again)."""
        try:
            await self._maintain_once()
        except Exception:
            logger.exception("pool %r: maintenance failed", self.name)

    async def _maintain_once(self) -> None:
        """Expire by age, reap idle above min_size, report leaks, refill."""
        now = monotonic()
        self._reap(now)
        if self._leaks is not None:
            await self._leaks.check(now)
        self._refill()

    def _reap(self, now: float) -> None:
        """Retire idle connections past their lifetime, closed by the server, or idle for
        longer than max_idle above min_size (oldest idle first)."""
        max_idle = self.config.max_idle
        keep: deque[ConnRecord] = deque()
        above = len(self._conns) - self._min
        is_closed = self.driver.is_closed
        for c in self._idle:  # oldest idle first; a connection the server closed goes too
            if (
                now >= c.expires
                or is_closed(c.native)
                or (above > 0 and idle_too_long(now, c.idle_since, max_idle))
            ):
                self._retire(c)
                above -= 1
            else:
                keep.append(c)
        if len(keep) != len(self._idle):
            self._idle.clear()  # in place: getconn() may hold a reference across an await
            self._idle.extend(keep)

    # -- helpers ------------------------------------------------------------------------
    def _event(self, c: ConnRecord, now: float, held: float | None = None) -> ConnectionEvent:
        return ConnectionEvent(
            pool=self.name,
            adapter=self.adapter,
            connection_id=c.server_id,
            age=now - c.created,
            held=held,
            connection=c.native,
        )
