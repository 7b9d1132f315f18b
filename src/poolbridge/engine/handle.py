"""EnginePool: the uniform :class:`~poolbridge.pool.handle.Pool` handle around an Engine.

Engine-backed adapters (asyncpg, aiomysql, asyncmy, aiopg, aiosqlite) return it:
``acquire()`` yields the driver's own connection object, ``.native`` is the
:class:`~poolbridge.engine.checkout.Engine`, stats come from the shared StatsRecorder the engine
writes to.
"""

from __future__ import annotations

from time import perf_counter
from typing import Any

from poolbridge.config.model import PasswordProvider, PoolConfig
from poolbridge.engine.checkout import DriverShim, Engine, _Acquire
from poolbridge.pool.handle import Pool
from poolbridge.pool.hooks import Hooks

__all__ = ["EnginePool"]


class EnginePool(Pool[Any]):
    """A Pool whose connections are managed by poolbridge's own engine."""

    def __init__(
        self,
        config: PoolConfig,
        driver: DriverShim,
        *,
        adapter: str,
        hooks: Hooks | None = None,
    ) -> None:
        super().__init__(config, adapter=adapter, hooks=hooks)
        self.driver = driver
        self.engine = Engine(
            config, driver, adapter=adapter, hooks=self.hook_runner, recorder=self.recorder
        )

    async def open(self, *, wait: bool = True) -> EnginePool:
        """Warm up to ``min_size`` (see :meth:`Engine.open`); returns self."""
        await self.engine.open(wait=wait)
        return self

    @property
    def native(self) -> Engine:
        return self.engine

    @property
    def closed(self) -> bool:
        return self.engine.closed

    def acquire(self) -> _Acquire:
        cm = _Acquire()  # as Engine.acquire() builds it, without one more call
        cm._engine = self.engine
        return cm

    async def ping(self) -> float:
        async with self.engine.acquire() as conn:
            t0 = perf_counter()
            await self.driver.ping(conn)
            return perf_counter() - t0

    async def rotate(self, password: str | PasswordProvider | None = None) -> None:
        await self.engine.rotate(password)
        self.config = self.engine.config

    async def close(self, timeout: float | None = None) -> None:
        await self.engine.close(timeout)
