"""What one suite test works with: a :class:`Case` (which column, which entry point) and,
inside its event loop, a :class:`Session` (admin connection, limited role, pools, events).

Suite tests are plain functions that call ``case.run(body)``: the plugin runs every async
body in a fresh event loop of its own, so the suite does not depend on the user's
pytest-asyncio mode (strict, auto, or not installed at all).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from poolbridge.config.model import PoolConfig
from poolbridge.pool.handle import Pool
from poolbridge.pool.hooks import ConnectionEvent, Hooks
from poolbridge.testing.admin import Admin, open_admin

if TYPE_CHECKING:
    from poolbridge.adapters.base import Adapter, EntryPoint, ScalarRunner
    from poolbridge.testing.ha import PairSource

__all__ = ["Case", "Event", "Session", "Target"]

#: every suite test must finish within this many seconds (a hang is a failure, not a stall)
TEST_DEADLINE = 60.0


@dataclass(frozen=True)
class Target:
    """One matrix column on one backend: adapter x dburl x driver (``via="pgbouncer"``: the
    dburl is a pgbouncer in transaction pooling mode in front of PostgreSQL)."""

    adapter_name: str
    dburl: str = field(repr=False)  # may carry a password: never in reprs or test ids
    backend: str = ""
    driver: str = ""
    via: str = ""

    @property
    def column(self) -> str:
        return f"{self.adapter_name}[{self.driver}]"


@dataclass(frozen=True)
class Event:
    """One hook call as recorded by the suite."""

    hook: str
    pool: str
    connection_id: int | str | None
    at: float
    held: float | None = None
    stack: str | None = None


@dataclass
class Case:
    """The parameters of one suite test item."""

    target: Target
    adapter: Adapter
    entry_point: str
    faults: bool = False
    #: the event loop each test runs on: "asyncio" (the default loop) or "uvloop"
    loop: str = "asyncio"
    #: the replicated pairs of the high-availability rows (None: a source of their own)
    pairs: PairSource | None = field(default=None, repr=False)

    def run(self, body: Callable[[Session], Awaitable[None]]) -> None:
        """Run ``body`` in a fresh event loop with a :class:`Session`; clean up after it."""

        async def main() -> None:
            async with Session.start(self) as session:
                await asyncio.wait_for(body(session), TEST_DEADLINE)

        with asyncio.Runner(loop_factory=loop_factory(self.loop)) as runner:
            runner.run(main())


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop factory for ``name`` ("asyncio": None, the default; "uvloop")."""
    if name == "asyncio":
        return None
    if name == "uvloop":
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
        return factory
    raise ValueError(f"unknown event loop {name!r} (asyncio or uvloop)")


@dataclass
class Session:
    """Admin connection, limited role, the pools opened and the hook events they fired."""

    case: Case
    admin: Admin
    url: str = field(repr=False)  # the test role's password is in it
    events: list[Event] = field(default_factory=list)
    pools: list[Pool[Any]] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)

    @classmethod
    @contextlib.asynccontextmanager
    async def start(cls, case: Case, limit: int = 10) -> AsyncIterator[Session]:
        __tracebackhide__ = True  # its locals hold credentials: keep them out of reports
        admin = await open_admin(case.target.dburl, via=case.target.via)
        try:
            async with admin.limited_user(limit) as url:
                session = cls(case=case, admin=admin, url=url)
                try:
                    yield session
                finally:
                    await session._cleanup()
        finally:
            await admin.close()

    async def _cleanup(self) -> None:
        for pool in self.pools:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pool.close(timeout=1.0), 10)
        for table in self.tables:
            with contextlib.suppress(Exception):
                await self.admin.drop_table(table)

    # -- facts about the target -----------------------------------------------------------
    @property
    def backend(self) -> str:
        return self.case.target.backend

    @property
    def server_side(self) -> bool:
        """True when the server can be asked which connections are alive (not SQLite)."""
        return self.admin.id_sql is not None

    @property
    def role(self) -> str | None:
        return getattr(self.admin, "role", None)

    def sleep_sql(self, seconds: float) -> str:
        return self.admin.sleep_sql.format(s=seconds)

    async def set_limit(self, limit: int) -> None:
        """Change the server-side connection limit of this test's role."""
        if self.backend == "postgresql":
            await self.admin.execute(f"ALTER ROLE {self.role} CONNECTION LIMIT {int(limit)}")
        elif self.backend == "mysql":
            await self.admin.execute(
                f"ALTER USER '{self.role}'@'%' WITH MAX_USER_CONNECTIONS {int(limit)}"
            )

    # -- pools ----------------------------------------------------------------------------
    def config(self, **overrides: Any) -> PoolConfig:
        """A PoolConfig for this column: the limited role's URL, the driver, a unique name."""
        values: dict[str, Any] = {
            "url": self.url,
            "driver": self.case.target.driver,
            "name": f"pbsuite_{uuid.uuid4().hex[:8]}",
            "min_size": 1,
            "max_size": 2,
            "acquire_timeout": 5.0,
        }
        if self.backend != "sqlite":  # SQLite opens a file: a connect_timeout is refused
            values["connect_timeout"] = 5.0
        if self.case.target.via == "pgbouncer":
            values["statement_cache"] = False  # what makes a stack safe behind pgbouncer
        values.update(overrides)
        return PoolConfig(**values)

    def hooks(self, name: str) -> Hooks:
        """Hooks recording every event of the pool called ``name`` into :attr:`events`."""

        def recorder(hook: str) -> Callable[[ConnectionEvent], None]:
            def record(ev: ConnectionEvent) -> None:
                self.events.append(
                    Event(
                        hook,
                        ev.pool,
                        self.admin.connection_key(ev.connection_id, ev.connection),
                        time.monotonic(),
                        ev.held,
                        ev.acquire_stack,
                    )
                )

            return record

        return Hooks(
            on_connect=recorder("on_connect"),
            on_checkout=recorder("on_checkout"),
            on_checkin=recorder("on_checkin"),
            on_close=recorder("on_close"),
            on_timeout=recorder("on_timeout"),
            on_leak=recorder("on_leak"),
        )

    async def open(self, config: PoolConfig) -> Pool[Any]:
        """Open a pool through the adapter under test, recording its hook events."""
        pool = await self.case.adapter.open(config, self.hooks(config.name))
        self.pools.append(pool)
        return pool

    def entry(self, pool: Pool[Any], name: str | None = None) -> EntryPoint:
        """The entry point of this case (or ``name``) for ``pool``."""
        points = self.case.adapter.entry_points(pool)
        wanted = name or self.case.entry_point
        if wanted not in points:
            raise AssertionError(
                f"adapter {self.case.target.adapter_name!r} has no entry point {wanted!r} "
                f"(has: {', '.join(points)})"
            )
        return points[wanted]

    @contextlib.asynccontextmanager
    async def use(self, pool: Pool[Any], name: str | None = None) -> AsyncIterator[ScalarRunner]:
        """``async with s.use(pool) as run: await run("SELECT 1")`` via the case's entry point."""
        async with self.entry(pool, name)() as run:
            yield run

    # -- events and server-side facts -----------------------------------------------------
    def of(self, pool: Pool[Any] | str, hook: str | None = None) -> list[Event]:
        name = pool if isinstance(pool, str) else pool.name
        return [e for e in self.events if e.pool == name and (hook is None or e.hook == hook)]

    def ids(self, pool: Pool[Any]) -> set[int | str]:
        """Server ids of every connection ``pool`` ever opened (from on_connect)."""
        return {e.connection_id for e in self.of(pool, "on_connect") if e.connection_id is not None}

    async def alive(self, pool: Pool[Any]) -> set[int]:
        """Which of the pool's connections are alive server-side."""
        return await self.admin.alive(self.ids(pool))

    async def wait_for(
        self, probe: Callable[[], Awaitable[bool]], timeout: float, step: float = 0.05
    ) -> bool:
        """Poll ``probe`` until true or ``timeout`` s pass; returns the last result."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if await probe():
                return True
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(step)

    async def table(self) -> str:
        """A fresh table (one integer column ``id``) the test role may write; dropped after."""
        name = f"pb_t_{uuid.uuid4().hex[:10]}"
        await self.admin.create_table(name, self.role)
        self.tables.append(name)
        return name

    async def server_id(self, run: ScalarRunner) -> int | str | None:
        """The server-side id of the connection behind ``run`` (as the hooks record it)."""
        return await self.admin.connection_id(run)
