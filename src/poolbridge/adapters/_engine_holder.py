"""An Engine slot for ORM objects that put poolbridge's pool engine under themselves.

Tortoise clients and peewee-async pool backends create their pool lazily and may close and
re-create it (``Tortoise.close_connections()`` then a new query; peewee-async
``aio_close()`` then ``aio_connect()``). :class:`EngineHolder` keeps what outlives one
engine — the hook runner and the stats recorder, shared with the uniform Pool handle — and
opens a fresh :class:`~poolbridge.engine.checkout.Engine` each time the ORM asks for a pool.
Once the handle is closed (``final``), asking again raises PoolClosed.
"""

from __future__ import annotations

import importlib
from typing import Any

from poolbridge.config.model import PasswordProvider, PoolConfig
from poolbridge.engine.checkout import DriverShim, Engine
from poolbridge.errors import PoolClosed
from poolbridge.pool.hooks import HookRunner, Hooks
from poolbridge.pool.rotation import with_password
from poolbridge.pool.stats import StatsRecorder

__all__ = ["EngineHolder", "load_shim", "shim_unsupported"]


def load_shim(driver: str) -> DriverShim:
    """The engine shim of ``driver``: the class ``poolbridge.drivers.<driver>`` exports."""
    module = importlib.import_module(f"poolbridge.drivers.{driver}")
    cls = getattr(module, module.__all__[0])
    shim: DriverShim = cls()
    return shim


def shim_unsupported(driver: str, config: PoolConfig) -> dict[str, str]:
    """Knobs the driver's shim says it cannot honour for ``config`` (no driver import)."""
    module = importlib.import_module(f"poolbridge.drivers.{driver}")
    shim = getattr(module, module.__all__[0])()
    check = getattr(shim, "unsupported", None)
    return dict(check(config)) if check is not None else {}


class EngineHolder:
    """The current engine of one ORM object plus the runner/recorder that outlive it."""

    def __init__(
        self, config: PoolConfig, driver: str, *, adapter: str, hooks: Hooks | None
    ) -> None:
        self.config = config
        self.driver = driver
        self.adapter = adapter
        self.hook_runner = HookRunner(hooks or Hooks())
        self.recorder = StatsRecorder(min_size=config.min_size, max_size=config.max_size)
        self.engine: Engine | None = None
        #: set by the Pool handle's close(): the ORM may not re-open a pool any more
        self.final = False

    async def open(self, config: PoolConfig | None = None) -> Engine:
        """Open (and warm up to min_size) a new engine; ``config`` overrides for this one."""
        if self.final:
            raise PoolClosed(f"pool {self.config.name!r} is closed")
        engine = Engine(
            config or self.config,
            load_shim(self.driver),
            adapter=self.adapter,
            hooks=self.hook_runner,
            recorder=self.recorder,
        )
        await engine.open()  # a failed warm-up closes what it opened and raises
        self.engine = engine
        return engine

    async def rotate(self, password: str | PasswordProvider | None) -> None:
        """Switch to ``password`` (None: keep it) for this engine and any engine the ORM
        opens later, and replace every connection of the current engine."""
        if self.final:
            raise PoolClosed(f"pool {self.config.name!r} is closed")
        self.config = with_password(self.config, password, self.adapter)
        engine = self.engine
        if engine is not None and not engine.closed:
            await engine.rotate(password)

    async def close(self, timeout: float | None) -> None:
        """Drain the current engine for up to ``timeout`` s (None: ``acquire_timeout``),
        then terminate."""
        engine = self.engine
        if engine is not None:
            await engine.close(timeout)

    def server_ids(self) -> list[Any]:
        engine = self.engine
        return [] if engine is None or engine.closed else engine.server_ids()
