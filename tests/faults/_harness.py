"""Shared machinery of the fault-injection tests.

- :class:`Stack`: one adapter x driver x backend, discovered from the registry at collection;
- :class:`ServerView`: the server-side truth, over its own connection (never the pool's):
  which of the ids a pool recorded in on_connect are alive, kill them, their states;
- :class:`Probe`: a pool opened through ``open_pool`` with hooks recording every server id;
  ``call()`` runs one query as a caller with a time bound and classifies the outcome.

What counts as an acceptable failure of a caller under a fault (see docs/resilience.md):
a :class:`poolbridge.PoolBridgeError`, a connection-class error of the driver (as
:func:`poolbridge.core.retrying.is_connection_error` defines it: the class users catch to
retry), or a timeout (builtin TimeoutError, a server statement timeout: SQLSTATE 57014 /
MariaDB 1969). Anything else — or finishing later than the caller's bound — is a failure.
"""

from __future__ import annotations

import asyncio
import importlib.util
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest

from poolbridge import Hooks, PoolBridgeError, PoolConfig, RetryPolicy, open_pool
from poolbridge.core.hooks import ConnectionEvent
from poolbridge.core.registry import BUILTIN_ADAPTERS, get_adapter
from poolbridge.core.retrying import is_connection_error
from poolbridge.errors import AdapterNotAvailable

# -- stacks ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stack:
    adapter: str
    backend: str
    driver: str

    @property
    def id(self) -> str:
        return self.adapter if self.adapter == self.driver else f"{self.adapter}+{self.driver}"


def stacks(backend: str) -> list[Any]:
    """pytest params of every adapter x driver that serves ``backend`` (module present)."""
    out = []
    for name, module in BUILTIN_ADAPTERS.items():
        if importlib.util.find_spec(module) is None:
            continue
        try:
            impl = get_adapter(name)
        except Exception:  # an adapter module being written right now may not import
            continue
        for driver in impl.drivers.get(backend, ()):
            stack = Stack(name, backend, driver)
            out.append(pytest.param(stack, id=stack.id))
    return out


def require_stack(stack: Stack) -> None:
    """Skip when the stack's ORM/driver is not installed (the CI image has them all)."""
    try:
        get_adapter(stack.adapter).check_available()
    except AdapterNotAvailable as exc:
        pytest.skip(str(exc))


# -- the server side ------------------------------------------------------------------------------


class ServerView:
    """Server-side facts about a set of connection ids, over a fresh connection each time."""

    def __init__(self, url: str, backend: str) -> None:
        self.url = url
        self.backend = backend

    async def _pg(self) -> Any:
        import asyncpg

        return await asyncpg.connect(self.url, timeout=5)

    async def _my(self) -> Any:
        import aiomysql

        from poolbridge.core.config import PoolConfig as _C

        u = _C(url=self.url).database_url
        return await aiomysql.connect(
            host=u.host or "127.0.0.1", port=u.port or 3306, user=u.username or "root",
            password=u.password or "", db=u.database or "test", autocommit=True,
            connect_timeout=5,
        )  # fmt: skip

    async def alive(self, ids: Iterable[Any]) -> set[int]:
        """Which of ``ids`` are connections the server still has."""
        wanted = sorted({int(i) for i in ids if i is not None})
        if not wanted:
            return set()
        if self.backend == "postgresql":
            conn = await self._pg()
            try:
                rows = await conn.fetch(
                    "SELECT pid FROM pg_stat_activity WHERE pid = ANY($1::int[])", wanted
                )
                return {r["pid"] for r in rows}
            finally:
                await conn.close()
        conn = await self._my()
        try:
            async with conn.cursor() as cur:
                marks = ",".join(str(i) for i in wanted)
                await cur.execute(
                    f"SELECT ID FROM information_schema.PROCESSLIST WHERE ID IN ({marks})"
                )
                return {int(r[0]) for r in await cur.fetchall()}
        finally:
            conn.close()

    async def kill(self, ids: Iterable[Any]) -> int:
        """Terminate the server connections ``ids`` (pg_terminate_backend / KILL)."""
        wanted = sorted({int(i) for i in ids if i is not None})
        if not wanted:
            return 0
        if self.backend == "postgresql":
            conn = await self._pg()
            try:
                killed: int = await conn.fetchval(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) "
                    "FROM pg_stat_activity WHERE pid = ANY($1::int[])",
                    wanted,
                )
                return killed
            finally:
                await conn.close()
        conn = await self._my()
        n = 0
        try:
            async with conn.cursor() as cur:
                for i in wanted:
                    try:
                        await cur.execute(f"KILL {i}")
                        n += 1
                    except Exception:  # already gone
                        pass
        finally:
            conn.close()
        return n

    async def in_transaction(self, ids: Iterable[Any]) -> set[int]:
        """Ids of connections sitting in an open transaction while idle."""
        wanted = sorted({int(i) for i in ids if i is not None})
        if not wanted:
            return set()
        if self.backend == "postgresql":
            conn = await self._pg()
            try:
                rows = await conn.fetch(
                    "SELECT pid FROM pg_stat_activity WHERE pid = ANY($1::int[]) "
                    "AND state LIKE 'idle in transaction%'",
                    wanted,
                )
                return {r["pid"] for r in rows}
            finally:
                await conn.close()
        conn = await self._my()
        try:
            async with conn.cursor() as cur:
                marks = ",".join(str(i) for i in wanted)
                await cur.execute(
                    "SELECT trx_mysql_thread_id FROM information_schema.INNODB_TRX "
                    f"WHERE trx_mysql_thread_id IN ({marks})"
                )
                return {int(r[0]) for r in await cur.fetchall()}
        finally:
            conn.close()


# -- the pool side --------------------------------------------------------------------------------


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
    if orig is not None and orig is not exc and acceptable_error(orig):
        return True
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    return code in (1969, 3024)  # MariaDB max_statement_time / MySQL max_execution_time


HANG_SLACK = 3.0


class CallerHung(Exception):
    """A caller that neither returned nor raised long after its time bound."""


@dataclass
class Outcome:
    ok: bool
    elapsed: float
    error: BaseException | None = None
    value: Any = None


@dataclass
class Probe:
    """A pool under test that remembers the server id of every connection it opened."""

    stack: Stack
    url: str
    options: dict[str, Any] = field(default_factory=dict)
    ids: list[Any] = field(default_factory=list)
    closed_ids: list[Any] = field(default_factory=list)
    hung: list[asyncio.Future[Any]] = field(default_factory=list)
    pool: Any = None

    def config(self) -> PoolConfig:
        opts: dict[str, Any] = {
            "min_size": 2,
            "max_size": 4,
            "acquire_timeout": 3.0,
            "connect_timeout": 2.0,
            "max_idle": None,
            "retry": RetryPolicy(attempts=2, initial_backoff=0.05, max_backoff=0.2),
            "name": f"pbfault_{uuid.uuid4().hex[:10]}",
        }
        opts.update(self.options)
        return PoolConfig(url=self.url, driver=self.stack.driver, **opts)

    async def __aenter__(self) -> Probe:
        require_stack(self.stack)
        self.cfg = self.config()

        def on_connect(ev: ConnectionEvent) -> None:
            self.ids.append(ev.connection_id)

        def on_close(ev: ConnectionEvent) -> None:
            self.closed_ids.append(ev.connection_id)

        hooks = Hooks(on_connect=on_connect, on_close=on_close)
        self.pool = await open_pool(self.cfg, adapter=self.stack.adapter, hooks=hooks)
        self.impl = get_adapter(self.stack.adapter)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self.hung:
            task.cancel()
        if self.pool is not None:
            # bounded without relying on cancellation (a stuck close may not honour it)
            closing = asyncio.ensure_future(self.pool.close(timeout=2.0))
            done, _ = await asyncio.wait([closing], timeout=15)
            if not done and not exc[0]:
                pytest.fail(f"{self.stack.id}: pool.close(timeout=2) still running after 15 s")

    async def query(self, sql: str) -> Any:
        async with self.pool.acquire() as conn:
            return await self.impl.fetch_scalar(conn, sql)

    async def call(self, sql: str, bound: float) -> Outcome:
        """Run ``sql`` as one caller, in its own task. A caller still running ``HANG_SLACK``
        seconds after ``bound`` is reported as hung (its task is left to the teardown, so a
        pool that blocks cancellation cannot block the test); ``elapsed`` is checked against
        ``bound`` by :func:`check_outcomes`."""
        t0 = time.monotonic()

        async def run() -> Any:
            return await self.query(sql)

        task = asyncio.ensure_future(run())
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

    def held(self) -> int:
        s = self.pool.stats()
        return int(s["connection.count.idle"]) + int(s["connection.count.used"])


def check_outcomes(stack: Stack, outcomes: list[Outcome], bound: float) -> None:
    """Every caller succeeded or failed acceptably, and within ``bound`` (+1 s of slack for a
    2-core machine shared with other test runs)."""
    hung = [o for o in outcomes if isinstance(o.error, CallerHung)]
    assert not hung, f"{stack.id}: {len(hung)} of {len(outcomes)} caller(s) hung: {hung[0].error}"
    bad = [o for o in outcomes if not o.ok and not acceptable_error(o.error)]  # type: ignore[arg-type]
    assert not bad, f"{stack.id}: callers got non-poolbridge errors: " + "; ".join(
        f"{type(o.error).__module__}.{type(o.error).__name__}: {o.error}" for o in bad[:5]
    )
    slow = [o for o in outcomes if o.elapsed > bound + 1.0]
    assert not slow, (
        f"{stack.id}: {len(slow)} caller(s) finished after their bound of {bound:.1f} s "
        f"(slowest {max(o.elapsed for o in slow):.1f} s)"
    )


async def wait_healed(view: ServerView, probe: Probe, *, timeout: float = 10.0) -> set[int]:
    """Wait until the server holds min_size..max_size of the pool's connections and the
    pool's stats agree with the server; assert it happens within ``timeout``."""
    deadline = time.monotonic() + timeout
    cfg = probe.cfg
    alive: set[int] = set()
    while True:
        alive = await view.alive(probe.ids)
        held = probe.held()
        if cfg.min_size <= len(alive) <= cfg.max_size and held == len(alive):
            return alive
        assert len(alive) <= cfg.max_size, (
            f"{probe.stack.id}: {len(alive)} server connections > max_size {cfg.max_size}"
        )
        if time.monotonic() > deadline:
            pytest.fail(
                f"{probe.stack.id}: not healed after {timeout:.0f} s: server has {len(alive)} "
                f"of the pool's connections (min_size={cfg.min_size}, max_size="
                f"{cfg.max_size}), pool stats say {held} open"
            )
        await asyncio.sleep(0.1)


async def assert_within_max(view: ServerView, probe: Probe) -> None:
    alive = await view.alive(probe.ids)
    assert len(alive) <= probe.cfg.max_size, (
        f"{probe.stack.id}: {len(alive)} server connections > max_size {probe.cfg.max_size}"
    )


async def recover(probe: Probe, sql: str, *, failures_allowed: int, timeout: float = 10.0) -> int:
    """Run bursts of max_size concurrent callers (so every idle connection is used) until a
    whole burst succeeds; then two more bursts must succeed entirely. Returns the failures
    seen before, asserted <= ``failures_allowed``: a dead connection may fail one caller
    ("replaced on the error") but is never handed out twice."""
    deadline = time.monotonic() + timeout
    failures: list[BaseException] = []
    bound = probe.cfg.acquire_timeout + 5
    n = probe.cfg.max_size
    while True:
        outs = await asyncio.gather(*(probe.call(sql, bound) for _ in range(n)))
        errors = [o.error for o in outs if not o.ok and o.error is not None]
        for err in errors:
            assert acceptable_error(err), (
                f"{probe.stack.id}: unexpected error while recovering: {err!r}"
            )
        failures += errors
        assert len(failures) <= failures_allowed, (
            f"{probe.stack.id}: {len(failures)} failures after the fault (allowed "
            f"{failures_allowed}: a dead connection was handed out again?): "
            + "; ".join(f"{type(e).__name__}: {e}" for e in failures[-3:])
        )
        if not errors:
            break
        assert time.monotonic() < deadline, f"{probe.stack.id}: pool did not recover"
        await asyncio.sleep(0.05)
    for _ in range(2):
        outs = await asyncio.gather(*(probe.call(sql, bound) for _ in range(n)))
        bad = [o.error for o in outs if not o.ok]
        assert not bad, f"{probe.stack.id}: failed again after recovering: {bad[0]!r}"
    return len(failures)


ALL_STACKS = stacks("postgresql") + stacks("mysql")
SLEEP = {"postgresql": "SELECT pg_sleep({s})", "mysql": "SELECT SLEEP({s})"}


def server_for(request: pytest.FixtureRequest, stack: Stack) -> tuple[str, ServerView]:
    """The URL of ``stack``'s real server (through the fixtures: fails under CI when down)
    and a view of it for server-side counts."""
    if stack.backend == "postgresql":
        url: str = request.getfixturevalue("pg_url")
    else:
        url = request.getfixturevalue("mysql_url")
    return url, ServerView(url, stack.backend)
