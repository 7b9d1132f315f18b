"""Fault-injection checks shared by the conformance suite's fault rows and the project's soak
and pgbouncer tests: run callers with a time bound, and check from the server side that a
pool under a fault stays within max_size, fails its callers acceptably, and heals.

What counts as an acceptable failure of a caller under a fault (docs/resilience.md): a
:class:`poolbridge.PoolBridgeError` (PoolTimeout, ...), a connection-class error of the driver
(as :func:`poolbridge.pool.retrying.is_connection_error` defines it: the class users catch to
retry; a dead connection may fail the one caller that meets it), or a timeout (builtin
TimeoutError, a server statement timeout: SQLSTATE 57014 / MariaDB 1969 / MySQL 3024).
Anything else — or finishing later than the caller's bound — is a failure.

The server-side truth comes from an admin connection (:class:`poolbridge.testing.admin.Admin`,
or :class:`ServerView`, which reconnects for every question and so survives a server
restart) asked about the server ids the pool's ``on_connect`` hook recorded — never the
pool's own belief.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from poolbridge.errors import PoolBridgeError, PoolTimeout
from poolbridge.pool.retrying import is_connection_error
from poolbridge.testing.admin import open_admin

if TYPE_CHECKING:
    from poolbridge.adapters.base import Adapter
    from poolbridge.pool.handle import Pool

__all__ = [
    "HANG_SLACK",
    "CallerHung",
    "FaultPool",
    "Outcome",
    "Serialized",
    "ServerView",
    "View",
    "acceptable_error",
    "check_outcomes",
]

#: a caller still running this many seconds after its bound is reported as hung
HANG_SLACK = 3.0
#: scheduling slack allowed past a caller's bound (a 2-core machine shared with other runs)
MARGIN = 1.0


class View(Protocol):
    """What the checks ask the server (:class:`~poolbridge.testing.admin.Admin` fits)."""

    async def alive(self, ids: Iterable[int | str | None]) -> set[int]: ...

    async def kill(self, connection_id: int | str) -> None: ...

    async def in_transaction(self, connection_id: int | str) -> bool: ...


class ServerView:
    """A :class:`View` that opens a fresh admin connection per question (survives restarts)."""

    def __init__(self, url: str) -> None:
        self._url = url

    @contextlib.asynccontextmanager
    async def _admin(self) -> Any:
        admin = await open_admin(self._url)
        try:
            yield admin
        finally:
            await admin.close()

    async def alive(self, ids: Iterable[int | str | None]) -> set[int]:
        async with self._admin() as admin:
            result: set[int] = await admin.alive(ids)
            return result

    async def kill(self, connection_id: int | str) -> None:
        async with self._admin() as admin:
            await admin.kill(connection_id)

    async def in_transaction(self, connection_id: int | str) -> bool:
        async with self._admin() as admin:
            return bool(await admin.in_transaction(connection_id))


class Serialized:
    """A :class:`View` over one admin connection shared by concurrent checks: one question
    at a time (a driver connection cannot run two statements at once)."""

    def __init__(self, view: View) -> None:
        self._view = view
        self._lock = asyncio.Lock()

    async def alive(self, ids: Iterable[int | str | None]) -> set[int]:
        async with self._lock:
            return await self._view.alive(ids)

    async def kill(self, connection_id: int | str) -> None:
        async with self._lock:
            await self._view.kill(connection_id)

    async def in_transaction(self, connection_id: int | str) -> bool:
        async with self._lock:
            return await self._view.in_transaction(connection_id)


def acceptable_error(exc: BaseException) -> bool:
    """A failure a caller may see under a fault (module docstring)."""
    if isinstance(exc, CallerHung):
        return False
    if isinstance(exc, PoolBridgeError | TimeoutError):
        return True
    if is_connection_error(exc):
        return True
    state = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    if state == "57014":  # query_canceled: statement_timeout
        return True
    orig = getattr(exc, "orig", None)
    if isinstance(orig, BaseException) and orig is not exc and acceptable_error(orig):
        return True
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    return code in (1969, 3024)  # MariaDB max_statement_time / MySQL max_execution_time


class CallerHung(Exception):
    """A caller that neither returned nor raised long after its time bound."""


@dataclass
class Outcome:
    """How one caller ended: a value, or an error; and after how long."""

    ok: bool
    elapsed: float
    error: BaseException | None = None
    value: Any = None


def _describe(exc: BaseException | None) -> str:
    return f"{type(exc).__module__}.{type(exc).__name__}: {exc}" if exc else "?"


def check_outcomes(label: str, outcomes: list[Outcome], bound: float) -> None:
    """Every caller succeeded or failed acceptably, and within ``bound`` (+ :data:`MARGIN`)."""
    hung = [o for o in outcomes if isinstance(o.error, CallerHung)]
    assert not hung, f"{label}: {len(hung)} of {len(outcomes)} caller(s) hung: {hung[0].error}"
    bad = [o for o in outcomes if not o.ok and not acceptable_error(o.error or Exception())]
    assert not bad, f"{label}: callers got non-poolbridge errors: " + "; ".join(
        _describe(o.error) for o in bad[:5]
    )
    slow = [o for o in outcomes if o.elapsed > bound + MARGIN]
    assert not slow, (
        f"{label}: {len(slow)} caller(s) finished after their bound of {bound:.1f} s "
        f"(slowest {max(o.elapsed for o in slow):.1f} s)"
    )


@dataclass
class FaultPool:
    """A pool under a fault, the adapter that runs its queries, and the server's view of it.

    ``ids`` returns the server ids of every connection the pool ever opened (recorded by its
    ``on_connect`` hook); ``label`` names the column in messages.
    """

    pool: Pool[Any]
    adapter: Adapter
    view: View
    ids: Callable[[], Iterable[int | str | None]]
    label: str
    hung: list[asyncio.Future[Any]] = field(default_factory=list)

    @property
    def min_size(self) -> int:
        return self.pool.config.min_size

    @property
    def max_size(self) -> int:
        return self.pool.config.max_size

    @property
    def acquire_timeout(self) -> float:
        return float(self.pool.config.acquire_timeout or 0.0)

    async def query(self, sql: str) -> Any:
        """One caller: acquire, run ``sql``, release."""
        async with self.pool.acquire() as conn:
            return await self.adapter.fetch_scalar(conn, sql)

    async def call(self, sql: str, bound: float) -> Outcome:
        """Run ``sql`` as one caller in its own task. A caller still running
        :data:`HANG_SLACK` s after ``bound`` is reported as hung (its task is left to
        :meth:`close`, so a pool that blocks cancellation cannot block the test)."""
        t0 = time.monotonic()
        task = asyncio.ensure_future(self.query(sql))
        done, _ = await asyncio.wait([task], timeout=bound + HANG_SLACK)
        elapsed = time.monotonic() - t0
        if not done:
            task.cancel()
            self.hung.append(task)
            hung = CallerHung(f"{sql!r} still running after {elapsed:.1f} s")
            return Outcome(False, elapsed, hung)
        exc = task.exception()
        if exc is not None:
            return Outcome(False, elapsed, exc)
        return Outcome(True, elapsed, value=task.result())

    async def callers(self, sql: str, n: int, bound: float) -> list[Outcome]:
        """``n`` concurrent callers of ``sql``, each checked by :func:`check_outcomes`."""
        outcomes = list(await asyncio.gather(*(self.call(sql, bound) for _ in range(n))))
        check_outcomes(self.label, outcomes, bound)
        return outcomes

    def held(self) -> int:
        """Connections the pool says it has open (idle + checked out)."""
        s = self.pool.stats()
        return int(s["connection.count.idle"]) + int(s["connection.count.used"])

    async def alive(self) -> set[int]:
        """The pool's connections the server still has."""
        return await self.view.alive(self.ids())

    async def assert_within_max(self) -> set[int]:
        alive = await self.alive()
        assert len(alive) <= self.max_size, (
            f"{self.label}: {len(alive)} server connections > max_size {self.max_size}"
        )
        return alive

    async def kill_all(self) -> set[int]:
        """Terminate every live server connection of the pool; returns their ids."""
        alive = await self.alive()
        for cid in alive:
            await self.view.kill(cid)
        return alive

    async def wait_gone(self, ids: Iterable[int], timeout: float = 5.0) -> set[int]:
        """Poll until none of ``ids`` is alive (or ``timeout`` s); returns those still alive."""
        wanted = list(ids)
        deadline = time.monotonic() + timeout
        while True:
            still = await self.view.alive(wanted)
            if not still or time.monotonic() >= deadline:
                return still
            await asyncio.sleep(0.05)

    async def warm(self, n: int, sleep_sql: str) -> None:
        """Make the pool open ``n`` connections by running ``sleep_sql`` ``n`` times at once."""
        await asyncio.gather(*(self.query(sleep_sql) for _ in range(n)))

    async def wait_healed(self, *, timeout: float = 10.0) -> set[int]:
        """Wait until the server holds min_size..max_size of the pool's connections and the
        pool's stats agree with the server (never more than max_size meanwhile)."""
        deadline = time.monotonic() + timeout
        while True:
            alive = await self.assert_within_max()
            held = self.held()
            if self.min_size <= len(alive) and held == len(alive):
                return alive
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.label}: not healed after {timeout:.1f} s: the server has "
                    f"{len(alive)} of the pool's connections (min_size={self.min_size}, "
                    f"max_size={self.max_size}), pool stats say {held} open"
                )
            await asyncio.sleep(0.05)

    async def recover(self, sql: str, *, failures_allowed: int, timeout: float = 10.0) -> int:
        """Run bursts of max_size concurrent callers (so every idle connection is used) until a
        whole burst succeeds; then two more bursts must succeed entirely. Returns the failures
        seen before, asserted <= ``failures_allowed``: a dead connection may fail one caller
        ("replaced on the error") but is never handed out twice."""
        deadline = time.monotonic() + timeout
        failures: list[BaseException] = []
        bound = self.acquire_timeout + 5
        n = self.max_size
        while True:
            outs = await asyncio.gather(*(self.call(sql, bound) for _ in range(n)))
            errors = [o.error for o in outs if not o.ok and o.error is not None]
            for err in errors:
                assert acceptable_error(err), (
                    f"{self.label}: unexpected error while recovering: {_describe(err)}"
                )
            failures += errors
            assert len(failures) <= failures_allowed, (
                f"{self.label}: {len(failures)} failures after the fault (allowed "
                f"{failures_allowed}: a dead connection was handed out again?): "
                + "; ".join(_describe(e) for e in failures[-3:])
            )
            if not errors:
                break
            assert time.monotonic() < deadline, f"{self.label}: the pool did not recover"
            await asyncio.sleep(0.05)
        for _ in range(2):
            outs = await asyncio.gather(*(self.call(sql, bound) for _ in range(n)))
            bad = [o.error for o in outs if not o.ok]
            assert not bad, f"{self.label}: failed again after recovering: {_describe(bad[0])}"
        return len(failures)

    async def storm(self, sleep_sql: str, *, tasks: int, window: float, seed: int = 8) -> None:
        """``tasks`` callers (acquire, short query, release) started over ``window`` seconds,
        each cancelled at a random moment of its life: waiting, querying or releasing. Only
        CancelledError and PoolTimeout may end them; at least one must be cancelled."""
        rng = random.Random(seed)
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Any]] = []
        for _ in range(tasks):
            fut = asyncio.ensure_future(self.query(sleep_sql))
            loop.call_later(rng.uniform(0.0, 0.08), fut.cancel)
            futures.append(fut)
            if len(futures) % 50 == 0:
                await asyncio.sleep(window * 50 / tasks)
                await self.assert_within_max()
        results = await asyncio.wait_for(
            asyncio.gather(*futures, return_exceptions=True), timeout=self.acquire_timeout + 20
        )
        unexpected = [
            r
            for r in results
            if isinstance(r, BaseException)
            and not isinstance(r, asyncio.CancelledError | PoolTimeout)
        ]
        assert not unexpected, f"{self.label}: storm callers failed with {unexpected[:3]!r}"
        cancelled = sum(isinstance(r, asyncio.CancelledError) for r in results)
        assert cancelled > 0, "the storm cancelled nothing: it tests nothing"

    async def after_storm(self) -> None:
        """Nothing leaked: no checkout left, none idle in a transaction, healed, serving."""
        deadline = time.monotonic() + 10
        while self.pool.stats()["connection.count.used"] != 0:
            assert time.monotonic() < deadline, (
                f"{self.label}: connections still checked out after the storm: "
                f"{self.pool.stats()['connection.count.used']} (leaked by cancellation)"
            )
            await asyncio.sleep(0.05)
        alive = await self.wait_healed()
        stuck = [cid for cid in alive if await self.view.in_transaction(cid)]
        assert not stuck, f"{self.label}: idle connections left inside a transaction: {stuck}"
        await self.recover("SELECT 1", failures_allowed=0)

    async def close(self, timeout: float = 15.0) -> None:
        """Close the pool, bounded without relying on cancellation (a stuck close may not
        honour it); cancel the tasks of hung callers first."""
        for task in self.hung:
            task.cancel()
        closing = asyncio.ensure_future(self.pool.close(timeout=2.0))
        done, _ = await asyncio.wait([closing], timeout=timeout)
        assert done, f"{self.label}: pool.close(timeout=2) still running after {timeout:.0f} s"
        closing.result()
