"""The psycopg_pool machinery behind :mod:`poolbridge.adapters.psycopg` (imports psycopg).

:class:`PBConnectionPool` is a real ``AsyncConnectionPool``. It overrides ``getconn`` /
``putconn`` (what ``pool.connection()`` uses too) to fire hooks, feed the stats recorder,
track leaks and raise poolbridge's errors (which also subclass psycopg_pool's, so existing
``except psycopg_pool.PoolTimeout`` clauses keep working), and the two places where
psycopg_pool opens and drops physical connections so that ``connection.created`` /
``connection.closed`` and ``on_close`` count every one of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from time import monotonic
from typing import Any

import psycopg
import psycopg_pool
from psycopg.pq import TransactionStatus

from .. import errors
from ..core.config import PoolConfig
from ..core.hooks import ConnectionEvent, HookRunner, Hooks
from ..core.leaks import LeakTracker, Lease
from ..core.pool import Pool
from ..core.stats import StatsRecorder
from .psycopg import _NEVER, conninfo_kwargs

__all__ = ["PBConnectionPool", "PsycopgPool", "open_psycopg_pool"]

logger = logging.getLogger("poolbridge.adapters.psycopg")

_DIRTY = (TransactionStatus.INTRANS, TransactionStatus.INERROR)


class PoolTimeout(errors.PoolTimeout, psycopg_pool.PoolTimeout):
    """poolbridge's PoolTimeout that is also a psycopg_pool.PoolTimeout."""


class TooManyRequests(errors.TooManyRequests, psycopg_pool.TooManyRequests):
    """poolbridge's TooManyRequests that is also psycopg_pool's."""


class PoolClosed(errors.PoolClosed, psycopg_pool.PoolClosed):
    """poolbridge's PoolClosed that is also psycopg_pool's."""


def _server_id(conn: psycopg.AsyncConnection[Any]) -> int | None:
    try:
        return int(conn.info.backend_pid)
    except Exception:
        return None


async def _settle(conn: psycopg.AsyncConnection[Any]) -> None:
    """After on_connect: keep what the hook set up (commit), drop a failed transaction."""
    status = conn.pgconn.transaction_status
    if status == TransactionStatus.INTRANS:
        await conn.commit()
    elif status == TransactionStatus.INERROR:
        await conn.rollback()


class PBConnectionPool(psycopg_pool.AsyncConnectionPool):
    """AsyncConnectionPool with poolbridge's hooks, stats, leak tracking and errors."""

    def __init__(
        self,
        config: PoolConfig,
        *,
        adapter: str,
        hooks: HookRunner,
        recorder: StatsRecorder,
        leaks: LeakTracker,
    ) -> None:
        self.pb_config = config
        self.pb_adapter = adapter
        self.pb_hooks = hooks
        self.pb_recorder = recorder
        self.pb_leaks = leaks
        self.pb_out: dict[int, tuple[psycopg.AsyncConnection[Any], float, Lease | None]] = {}
        self.pb_last_error: BaseException | None = None

        async def kwargs() -> dict[str, Any]:
            return conninfo_kwargs(config, await config.get_password())

        super().__init__(
            "",
            kwargs=kwargs,
            min_size=config.min_size,
            max_size=config.max_size,
            open=False,
            configure=self._pb_configure,
            check=(psycopg_pool.AsyncConnectionPool.check_connection if config.pre_ping else None),
            reset=self._pb_full_reset if config.reset == "full" else None,
            name=config.name,
            timeout=config.acquire_timeout,
            max_waiting=config.max_waiting,
            max_lifetime=_NEVER if config.max_lifetime is None else config.max_lifetime,
            max_idle=_NEVER if config.max_idle is None else config.max_idle,
            reconnect_timeout=max(config.acquire_timeout, config.connect_timeout),
        )

    # -- events ---------------------------------------------------------------------------
    def _pb_event(
        self, conn: psycopg.AsyncConnection[Any] | None, held: float | None = None
    ) -> ConnectionEvent:
        created = getattr(conn, "_pb_created", None)
        return ConnectionEvent(
            pool=self.pb_config.name,
            adapter=self.pb_adapter,
            connection_id=None if conn is None else getattr(conn, "_pb_id", None),
            age=0.0 if created is None else monotonic() - created,
            held=held,
            connection=conn,
        )

    async def _pb_configure(self, conn: psycopg.AsyncConnection[Any]) -> None:
        conn._pb_created = monotonic()  # type: ignore[attr-defined]
        conn._pb_id = _server_id(conn)  # type: ignore[attr-defined]
        try:
            await self.pb_hooks.run_on_connect(self._pb_event(conn))
            await _settle(conn)
        except BaseException:
            await conn.close()
            raise

    async def _pb_full_reset(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """reset="full": DISCARD ALL (startup options survive it), then replay on_connect."""
        autocommit = conn.autocommit
        await conn.set_autocommit(True)
        try:
            await conn.execute("DISCARD ALL")
        finally:
            await conn.set_autocommit(autocommit)
        await self.pb_hooks.run_on_connect(self._pb_event(conn))
        await _settle(conn)

    async def _connect(self, timeout: float | None = None) -> Any:
        t0 = monotonic()
        try:
            conn = await super()._connect(timeout)
        except BaseException as exc:
            self.pb_recorder.record_error()
            self.pb_last_error = exc
            raise
        self.pb_recorder.record_created(monotonic() - t0)
        return conn

    async def _pb_closed(self, conn: psycopg.AsyncConnection[Any]) -> None:
        if getattr(conn, "_pb_gone", False):
            return
        conn._pb_gone = True  # type: ignore[attr-defined]
        self.pb_recorder.record_closed()
        if self.pb_hooks.has("on_close"):
            await self.pb_hooks.emit("on_close", self._pb_event(conn))

    async def _close_connection(self, conn: Any) -> None:
        try:
            await super()._close_connection(conn)
        finally:
            await self._pb_closed(conn)

    async def _return_connection(self, conn: Any, from_getconn: bool) -> None:
        if conn.pgconn.transaction_status == TransactionStatus.UNKNOWN:
            # found broken: psycopg_pool drops it without close(); count it here
            with contextlib.suppress(Exception):
                await conn.close()
            await self._pb_closed(conn)
        await super()._return_connection(conn, from_getconn)

    # -- checkout / checkin ---------------------------------------------------------------
    def pb_diagnostics(self, waited: float) -> str:
        now = monotonic()
        held = sorted((now - t for _, t, _ in self.pb_out.values()), reverse=True)[:3]
        ages = ", ".join(f"{h:.2f} s" for h in held) or "none"
        text = (
            f"pool {self.pb_config.name!r} (adapter {self.pb_adapter!r}): no connection free "
            f"after {waited:.2f} s (acquire_timeout={self.pb_config.acquire_timeout}); "
            f"max_size={self.pb_config.max_size}, in use={len(self.pb_out)}, "
            f"waiting={max(0, self.pb_recorder.pending - 1)} besides this caller, "
            f"longest held: {ages}"
        )
        if self.pb_last_error is not None:
            text += f"; last connection error: {type(self.pb_last_error).__name__}"
        return text

    async def getconn(self, timeout: float | None = None) -> Any:
        if self.closed:
            raise PoolClosed(f"pool {self.pb_config.name!r} is closed")
        rec = self.pb_recorder
        t0 = monotonic()
        rec.pending += 1
        try:
            conn = await super().getconn(timeout)
        except psycopg_pool.PoolTimeout as exc:
            rec.record_timeout()
            await self.pb_hooks.emit("on_timeout", self._pb_event(None))
            raise PoolTimeout(self.pb_diagnostics(monotonic() - t0)) from exc
        except psycopg_pool.TooManyRequests as exc:
            rec.record_refused()
            raise TooManyRequests(
                f"pool {self.pb_config.name!r}: {self.pb_config.max_waiting} callers already "
                f"wait (max_waiting={self.pb_config.max_waiting})"
            ) from exc
        except psycopg_pool.PoolClosed as exc:
            raise PoolClosed(f"pool {self.pb_config.name!r} is closed") from exc
        finally:
            rec.pending -= 1
        rec.record_checkout(monotonic() - t0)
        lease = self.pb_leaks.checkout(conn, getattr(conn, "_pb_id", None), 0.0)
        self.pb_out[id(conn)] = (conn, monotonic(), lease)
        if self.pb_hooks.has("on_checkout"):
            await self.pb_hooks.emit("on_checkout", self._pb_event(conn))
        return conn

    async def putconn(self, conn: Any) -> None:
        entry = self.pb_out.pop(id(conn), None)
        if entry is None:
            await super().putconn(conn)
            return
        _, since, lease = entry
        held = monotonic() - since
        self.pb_leaks.checkin(lease)
        self.pb_recorder.record_checkin(held)
        if self.pb_hooks.has("on_checkin"):
            await self.pb_hooks.emit("on_checkin", self._pb_event(conn, held))
        if conn.pgconn.transaction_status in _DIRTY:
            # reset="rollback" ourselves: psycopg_pool would do it too, with a warning log
            try:
                await conn.rollback()
            except Exception:
                with contextlib.suppress(Exception):
                    await conn.close()
        await super().putconn(conn)


class PsycopgPool(Pool[psycopg.AsyncConnection[Any]]):
    """The poolbridge handle around a :class:`PBConnectionPool`."""

    def __init__(self, config: PoolConfig, *, adapter: str, hooks: Hooks | None) -> None:
        super().__init__(config, adapter=adapter, hooks=hooks)
        self.leaks = LeakTracker(config, self.hook_runner, adapter)
        self._native = PBConnectionPool(
            config,
            adapter=adapter,
            hooks=self.hook_runner,
            recorder=self.recorder,
            leaks=self.leaks,
        )
        self._closing = False
        self._leak_task: asyncio.Task[None] | None = None

    @property
    def native(self) -> PBConnectionPool:
        return self._native

    @property
    def closed(self) -> bool:
        return self._closing

    async def _open(self) -> None:
        try:
            await self._native.open(wait=True, timeout=self.config.acquire_timeout)
        except psycopg_pool.PoolTimeout as exc:
            self._closing = True
            raise PoolTimeout(
                f"pool {self.config.name!r}: could not open min_size={self.config.min_size} "
                f"connections within {self.config.acquire_timeout} s"
                + (
                    f" (last error: {type(self._native.pb_last_error).__name__})"
                    if self._native.pb_last_error is not None
                    else ""
                )
            ) from exc
        if self.config.leak_timeout is not None:
            self._leak_task = asyncio.create_task(self._watch_leaks(self.config.leak_timeout))

    async def _watch_leaks(self, leak_timeout: float) -> None:
        while True:
            await asyncio.sleep(max(0.01, leak_timeout / 4))
            await self.leaks.check()

    def acquire(self) -> AbstractAsyncContextManager[psycopg.AsyncConnection[Any]]:
        return self._acquire()

    @asynccontextmanager
    async def _acquire(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        if self._closing:
            raise PoolClosed(f"pool {self.config.name!r} is closed")
        conn = await self._native.getconn()
        try:
            yield conn
        finally:
            # shielded: a second cancellation must not lose the connection
            await asyncio.shield(self._native.putconn(conn))

    async def ping(self) -> float:
        t0 = monotonic()
        async with self.acquire() as conn:
            await conn.execute("SELECT 1")
        return monotonic() - t0

    async def close(self, timeout: float | None = None) -> None:
        if self._closing:
            return
        self._closing = True
        if self._leak_task is not None:
            self._leak_task.cancel()
        await self._native.close()
        # drain: checked-out connections are closed by psycopg_pool when returned
        deadline = monotonic() + (self.config.acquire_timeout if timeout is None else timeout)
        while self._native.pb_out and monotonic() < deadline:
            await asyncio.sleep(0.02)
        await self.leaks.report_open()
        for conn, _, _ in list(self._native.pb_out.values()):
            with contextlib.suppress(Exception):
                await conn.close()
            await self._native._pb_closed(conn)


async def open_psycopg_pool(
    config: PoolConfig, hooks: Hooks | None, *, adapter: str
) -> PsycopgPool:
    """Create the pool and wait until ``min_size`` connections are open."""
    pool = PsycopgPool(config, adapter=adapter, hooks=hooks)
    await pool._open()
    return pool
