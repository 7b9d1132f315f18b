"""A fake DriverShim for engine tests (allowed here: it tests the engine, not a database).

It records every statement sent to each connection, counts physical connections open at
once (including ones being opened), and can be told to fail, slow down or die.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from poolbridge.config.model import PoolConfig, RetryPolicy
from poolbridge.engine.checkout import Engine
from poolbridge.pool.hooks import HookRunner, Hooks
from poolbridge.pool.stats import StatsRecorder

FAKE_URL = "postgresql://fake@127.0.0.1:1/fake"


class FakeConn:
    def __init__(self, ident: int) -> None:
        self.id = ident
        self.closed = False
        self.graceful = False
        self.dead = False  # the "server" killed it; the driver does not know yet
        self.in_txn = False
        self.statements: list[str] = []

    def __repr__(self) -> str:
        return f"<FakeConn {self.id}>"


class FakeDriver:
    name = "fake"
    backend = "postgresql"

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self.opened: list[FakeConn] = []
        self.connecting = 0
        self.max_concurrent = 0  # high-water mark of open + opening
        self.fail_next = 0
        self.down = False
        self.gate: asyncio.Event | None = None  # connect waits on it when set
        self.connect_yields = 1  # awaits inside connect (cancellation points)
        self.supports_full_reset = True

    @property
    def open_now(self) -> int:
        return sum(1 for c in self.opened if not c.closed)

    async def connect(self, config: PoolConfig, timeout: float) -> Any:
        self.connecting += 1
        self.max_concurrent = max(self.max_concurrent, self.open_now + self.connecting)
        try:
            if self.down:
                raise ConnectionRefusedError("fake server is down")
            if self.fail_next > 0:
                self.fail_next -= 1
                raise ConnectionRefusedError("fake connect failure")
            if self.gate is not None:
                await self.gate.wait()
            for _ in range(self.connect_yields):
                await asyncio.sleep(0)
            conn = FakeConn(next(self._ids))
            self.opened.append(conn)
            return conn
        finally:
            self.connecting -= 1

    async def close(self, conn: FakeConn) -> None:
        await asyncio.sleep(0)
        conn.closed = True
        conn.graceful = True

    def terminate(self, conn: FakeConn) -> None:
        conn.closed = True

    async def ping(self, conn: FakeConn) -> None:
        conn.statements.append("PING")
        await asyncio.sleep(0)
        if conn.dead:
            conn.closed = True
            raise ConnectionResetError("fake connection is dead")

    def in_transaction(self, conn: FakeConn) -> bool | None:
        return conn.in_txn

    def is_closed(self, conn: FakeConn) -> bool:
        return conn.closed

    async def rollback(self, conn: FakeConn) -> None:
        conn.statements.append("ROLLBACK")
        await asyncio.sleep(0)
        conn.in_txn = False

    async def full_reset(self, conn: FakeConn) -> bool:
        if not self.supports_full_reset:
            return False
        conn.statements.append("RESET")
        await asyncio.sleep(0)
        conn.in_txn = False
        return True

    async def server_id(self, conn: FakeConn) -> int | str:
        return conn.id

    def is_connection_error(self, exc: BaseException) -> bool:
        return isinstance(exc, ConnectionError)


def make_engine(
    driver: FakeDriver | None = None, hooks: Hooks | None = None, **fields: Any
) -> Engine:
    fields.setdefault("min_size", 1)
    fields.setdefault("max_size", 3)
    fields.setdefault("acquire_timeout", 2.0)
    fields.setdefault("retry", RetryPolicy(attempts=2, initial_backoff=0.01, max_backoff=0.02))
    config = PoolConfig(url=FAKE_URL, name=fields.pop("name", "fake-pool"), **fields)
    return Engine(
        config,
        driver or FakeDriver(),  # type: ignore[arg-type]
        adapter="fake",
        hooks=HookRunner(hooks or Hooks()),
        recorder=StatsRecorder(min_size=config.min_size, max_size=config.max_size),
    )


@asynccontextmanager
async def opened(engine: Engine) -> AsyncIterator[Engine]:
    await engine.open()
    try:
        yield engine
    finally:
        await engine.close(timeout=1)


async def eventually(predicate: Any, timeout: float = 5.0, what: str = "condition") -> None:
    """Poll ``predicate()`` until true (background work is asynchronous by design)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
