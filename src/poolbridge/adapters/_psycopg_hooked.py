"""psycopg_pool's AsyncConnectionPool with poolbridge's hooks, stats and errors.

psycopg_pool honours every pool knob itself (DESIGN: "psycopg keeps psycopg_pool"), so the
Tortoise psycopg backend and peewee-async's Psycopg3Database keep it. What it lacks is
poolbridge's surface: its timeouts raise ``psycopg_pool.PoolTimeout`` (Tortoise passes it
on untranslated), and it has no checkout/checkin/close hooks. This subclass adds them at the
four points every caller goes through — ``_connect`` (a new physical connection),
``getconn``/``putconn`` and ``_close_connection`` — and translates psycopg_pool's
PoolTimeout / TooManyRequests / PoolClosed into poolbridge's, the original chained.

An ``on_connect`` failure makes psycopg_pool discard that connection and retry in the
background (its policy for any connection failure), so a caller sees PoolTimeout rather
than HookError on this stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from time import monotonic
from typing import Any

import psycopg_pool

from ..core.config import PoolConfig
from ..core.hooks import ConnectionEvent, HookRunner, Hooks
from ..core.leaks import LeakTracker
from ..core.stats import StatsRecorder
from ..errors import PoolClosed, PoolTimeout, TooManyRequests

__all__ = ["HookedAsyncConnectionPool", "PsycopgHolder", "libpq_options"]

_ISOLATION = {
    "read_committed": "read committed",
    "repeatable_read": "repeatable read",
    "serializable": "serializable",
}


def libpq_options(config: PoolConfig, existing: str | None = None) -> str | None:
    """The libpq ``options`` value setting the config's session on every new connection.

    ``session`` items, ``statement_timeout`` (ms) and ``isolation_level`` become
    ``-c name=value`` flags, sent in the startup packet: no extra round trip.
    """
    flags = [existing] if existing else []
    settings: dict[str, str] = dict(config.session)
    if config.statement_timeout is not None:
        settings["statement_timeout"] = str(int(config.statement_timeout * 1000))
    if config.isolation_level is not None:
        settings["default_transaction_isolation"] = _ISOLATION[config.isolation_level]
    for key, value in settings.items():
        escaped = str(value).replace("\\", "\\\\").replace(" ", "\\ ")
        flags.append(f"-c {key}={escaped}")
    return " ".join(flags) or None


logger = logging.getLogger("poolbridge.psycopg")


class HookedAsyncConnectionPool(psycopg_pool.AsyncConnectionPool):
    """An AsyncConnectionPool reporting to a HookRunner and a StatsRecorder."""

    def __init__(
        self,
        *args: Any,
        poolbridge_hooks: HookRunner,
        poolbridge_recorder: StatsRecorder,
        poolbridge_adapter: str,
        poolbridge_full_reset: bool = False,
        poolbridge_leaks: LeakTracker | None = None,
        **kwargs: Any,
    ) -> None:
        if poolbridge_full_reset:
            kwargs["reset"] = self._pb_full_reset
        self.pb_hooks = poolbridge_hooks
        self.pb_recorder = poolbridge_recorder
        self.pb_adapter = poolbridge_adapter
        self.pb_leaks = poolbridge_leaks
        self._pb_leak_task: asyncio.Task[None] | None = None
        #: id(conn) -> [created at, checked out at or None, server pid, conn, lease]
        self._pb_conns: dict[int, list[Any]] = {}
        self._pb_drained: asyncio.Event | None = None
        super().__init__(*args, **kwargs)

    def _pb_event(self, conn: Any, held: float | None = None) -> ConnectionEvent:
        rec = self._pb_conns.get(id(conn))
        now = monotonic()
        return ConnectionEvent(
            pool=self.name,
            adapter=self.pb_adapter,
            connection_id=rec[2] if rec else None,
            age=now - rec[0] if rec else 0.0,
            held=held,
            connection=conn,
        )

    async def _connect(self, timeout: float | None = None) -> Any:
        t0 = monotonic()
        try:
            conn = await super()._connect(timeout)
        except Exception:
            self.pb_recorder.record_error()
            raise
        self.pb_recorder.record_created(monotonic() - t0)
        self._pb_conns[id(conn)] = [monotonic(), None, conn.info.backend_pid, conn, None]
        try:
            await self.pb_hooks.run_on_connect(self._pb_event(conn))
        except BaseException:
            self._pb_conns.pop(id(conn), None)
            self.pb_recorder.record_closed()
            await conn.close()
            raise
        return conn

    async def open(self, wait: bool = False, timeout: float = 30.0) -> None:
        await super().open(wait=wait, timeout=timeout)
        leaks = self.pb_leaks
        if leaks is not None and leaks.timeout is not None and self._pb_leak_task is None:
            self._pb_leak_task = asyncio.create_task(self._pb_watch_leaks(leaks, leaks.timeout))

    async def _pb_watch_leaks(self, leaks: LeakTracker, leak_timeout: float) -> None:
        while True:
            await asyncio.sleep(max(0.01, leak_timeout / 4))
            try:
                await leaks.check()
            except Exception:
                logger.exception("pool %r: leak check failed", self.name)

    async def close(self, timeout: float = 5.0) -> None:
        task, self._pb_leak_task = self._pb_leak_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await super().close(timeout)

    async def _pb_full_reset(self, conn: Any) -> None:
        """reset="full": discard all session state, then replay on_connect."""
        await conn.execute("DISCARD ALL")
        await self.pb_hooks.run_on_connect(self._pb_event(conn))

    async def getconn(self, timeout: float | None = None) -> Any:
        start = monotonic()
        self.pb_recorder.pending += 1
        try:
            conn = await super().getconn(timeout)
        except psycopg_pool.PoolTimeout as exc:
            self.pb_recorder.record_timeout()
            await self.pb_hooks.emit(
                "on_timeout", ConnectionEvent(self.name, self.pb_adapter, None)
            )
            raise PoolTimeout(self._pb_diagnostics(timeout)) from exc
        except psycopg_pool.TooManyRequests as exc:
            self.pb_recorder.record_refused()
            raise TooManyRequests(f"pool {self.name!r}: {exc}") from exc
        except psycopg_pool.PoolClosed as exc:
            raise PoolClosed(f"pool {self.name!r} is closed") from exc
        finally:
            self.pb_recorder.pending -= 1
        now = monotonic()
        self.pb_recorder.record_checkout(now - start)
        rec = self._pb_conns.get(id(conn))
        if rec is not None:
            rec[1] = now
            if self.pb_leaks is not None:
                rec[4] = self.pb_leaks.checkout(conn, rec[2], now - rec[0])
        if self.pb_hooks.has("on_checkout"):
            await self.pb_hooks.emit("on_checkout", self._pb_event(conn))
        return conn

    async def putconn(self, conn: Any) -> None:
        rec = self._pb_conns.get(id(conn))
        held = 0.0
        if rec is not None and rec[1] is not None:
            held = monotonic() - rec[1]
            rec[1] = None
            if self.pb_leaks is not None:
                self.pb_leaks.checkin(rec[4])
                rec[4] = None
        self.pb_recorder.record_checkin(held)
        if self._pb_drained is not None and self.pb_recorder.used <= 0:
            self._pb_drained.set()
        if self.pb_hooks.has("on_checkin"):
            await self.pb_hooks.emit("on_checkin", self._pb_event(conn, held))
        await super().putconn(conn)
        if conn.closed and id(conn) in self._pb_conns:
            # psycopg_pool drops a broken connection without _close_connection()
            await self._pb_forget(conn)

    async def _close_connection(self, conn: Any) -> None:
        try:
            await super()._close_connection(conn)
        finally:
            await self._pb_forget(conn)

    async def _pb_forget(self, conn: Any) -> None:
        if id(conn) not in self._pb_conns:
            return
        if self.pb_hooks.has("on_close"):
            await self.pb_hooks.emit("on_close", self._pb_event(conn))
        self._pb_conns.pop(id(conn), None)
        self.pb_recorder.record_closed(was_used=False)

    def _pb_diagnostics(self, timeout: float | None) -> str:
        stats = self.get_stats()
        now = monotonic()
        held = sorted((now - r[1] for r in self._pb_conns.values() if r[1] is not None),
                      reverse=True)  # fmt: skip
        longest = ", ".join(f"{h:.2f}s" for h in held[:3]) or "none"
        return (
            f"pool {self.name!r} ({self.pb_adapter}) timed out after "
            f"acquire_timeout={timeout if timeout is not None else self.timeout}s: "
            f"max_size={self.max_size}, in use={len(held)}, "
            f"idle={stats.get('pool_available', 0)}, "
            f"waiting={stats.get('requests_waiting', 0)}, longest held={longest}"
        )

    async def pb_close(self, timeout: float | None) -> None:
        """Drain (wait up to ``timeout`` s for checked-out connections), then close all.

        psycopg_pool's own close() leaves checked-out connections open until returned;
        poolbridge's close() promises none is left, so stragglers are closed here.
        """
        if self.pb_recorder.used > 0 and timeout != 0:
            self._pb_drained = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._pb_drained.wait()
        await self.close()
        if self.pb_leaks is not None:
            await self.pb_leaks.report_open()
        for rec in list(self._pb_conns.values()):
            conn = rec[3]
            if rec[1] is not None:
                logger.warning(
                    "pool %r: closing connection %s still checked out at close", self.name, rec[2]
                )
            with contextlib.suppress(Exception):
                await conn.close()
            if rec[1] is not None:
                self.pb_recorder.record_closed(was_used=True)
                if self.pb_hooks.has("on_close"):
                    await self.pb_hooks.emit("on_close", self._pb_event(conn))
            else:
                self.pb_recorder.record_closed()
            self._pb_conns.pop(id(conn), None)

    def pb_server_ids(self) -> list[Any]:
        return [rec[2] for rec in self._pb_conns.values()]


class PsycopgHolder:
    """Same role as EngineHolder for a psycopg_pool: runner/recorder outlive one pool."""

    def __init__(self, config: PoolConfig, *, adapter: str, hooks: Hooks | None) -> None:
        self.config = config
        self.driver = "psycopg"
        self.adapter = adapter
        self.hook_runner = HookRunner(hooks or Hooks())
        self.recorder = StatsRecorder(min_size=config.min_size, max_size=config.max_size)
        self.leaks = LeakTracker(config, self.hook_runner, adapter)
        self.pool: HookedAsyncConnectionPool | None = None
        self.final = False

    def check_open(self) -> None:
        if self.final:
            raise PoolClosed(f"pool {self.config.name!r} is closed")

    def pool_kwargs(self, base: dict[str, Any]) -> dict[str, Any]:
        """``base`` pool kwargs plus what wires a HookedAsyncConnectionPool to this holder
        and the knobs set on connections (pre-ping, statement cache, driver options)."""
        config = self.config
        out = dict(base)
        out["check"] = (
            psycopg_pool.AsyncConnectionPool.check_connection if config.pre_ping else None
        )
        conn_kwargs = dict(out.get("kwargs") or {})
        conn_kwargs.update(config.driver_options)
        if not config.statement_cache:
            conn_kwargs["prepare_threshold"] = None
        out["kwargs"] = conn_kwargs
        out.setdefault("name", config.name)
        out.update(
            poolbridge_hooks=self.hook_runner,
            poolbridge_recorder=self.recorder,
            poolbridge_adapter=self.adapter,
            poolbridge_full_reset=config.reset == "full",
            poolbridge_leaks=self.leaks,
        )
        return out

    async def close(self, timeout: float | None) -> None:
        if self.pool is not None:
            await self.pool.pb_close(timeout)

    def server_ids(self) -> list[Any]:
        return [] if self.pool is None or self.pool.closed else self.pool.pb_server_ids()
