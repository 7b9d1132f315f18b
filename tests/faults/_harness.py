"""Shared machinery of the project's own fault tests (pgbouncer, stalled pre-ping, soak
storms); the fault cases themselves are conformance rows (poolbridge.testing.suite
test_fault_cases.py), which ``tests/test_conformance.py`` runs for every column.

- :class:`Stack`: one adapter x driver x backend, discovered from the registry at collection;
- :class:`ServerView`: the server-side truth, over its own connection (never the pool's);
- :class:`Probe`: a pool opened through ``open_pool`` with hooks recording every server id;
  ``call()`` runs one query as a caller with a time bound and classifies the outcome.

The checks (acceptable errors, bounds, healing) live once in
:mod:`poolbridge.testing.servers.faults`; the functions here adapt them to a :class:`Probe`.
"""

from __future__ import annotations

import asyncio
import importlib.util
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest

from poolbridge import Hooks, PoolConfig, RetryPolicy, open_pool
from poolbridge.adapters.registry import BUILTIN_ADAPTERS, get_adapter
from poolbridge.errors import AdapterNotAvailable
from poolbridge.pool.hooks import ConnectionEvent
from poolbridge.testing.servers import faults
from poolbridge.testing.servers.faults import CallerHung, Outcome, acceptable_error

__all__ = [
    "ALL_STACKS",
    "SLEEP",
    "CallerHung",
    "Outcome",
    "Probe",
    "ServerView",
    "Stack",
    "acceptable_error",
    "assert_within_max",
    "check_outcomes",
    "recover",
    "require_stack",
    "server_for",
    "stacks",
    "wait_healed",
]

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
        except Exception:  # an adapter whose ORM is half installed cannot import
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


class ServerView(faults.ServerView):
    """Server-side facts over a fresh admin connection per question (survives a restart)."""

    def __init__(self, url: str, backend: str = "") -> None:
        super().__init__(url)
        self.backend = backend


# -- the pool side --------------------------------------------------------------------------------


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
        if self.pool is not None:
            try:
                await self.faults().close()
            except AssertionError as err:
                if not exc[0]:
                    pytest.fail(str(err))

    def faults(self, view: faults.View | None = None) -> faults.FaultPool:
        """The shared fault checks (:mod:`poolbridge.testing.servers.faults`) for this pool."""
        return faults.FaultPool(
            self.pool, self.impl, view or _NoView(), lambda: self.ids, self.stack.id, self.hung
        )

    async def query(self, sql: str) -> Any:
        return await self.faults().query(sql)

    async def call(self, sql: str, bound: float) -> Outcome:
        """Run ``sql`` as one caller (:meth:`poolbridge.testing.servers.faults.FaultPool.call`)."""
        return await self.faults().call(sql, bound)

    def held(self) -> int:
        return self.faults().held()


class _NoView:
    """For checks that need no server view; asking it anything is a test bug."""

    async def alive(self, ids: Iterable[int | str | None]) -> set[int]:
        raise AssertionError("this check needs a ServerView")

    async def kill(self, connection_id: int | str) -> None:
        raise AssertionError("this check needs a ServerView")

    async def in_transaction(self, connection_id: int | str) -> bool:
        raise AssertionError("this check needs a ServerView")


def check_outcomes(stack: Stack, outcomes: list[Outcome], bound: float) -> None:
    faults.check_outcomes(stack.id, outcomes, bound)


async def wait_healed(view: ServerView, probe: Probe, *, timeout: float = 10.0) -> set[int]:
    return await probe.faults(view).wait_healed(timeout=timeout)


async def assert_within_max(view: ServerView, probe: Probe) -> None:
    await probe.faults(view).assert_within_max()


async def recover(probe: Probe, sql: str, *, failures_allowed: int, timeout: float = 10.0) -> int:
    return await probe.faults().recover(sql, failures_allowed=failures_allowed, timeout=timeout)


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
