"""The shared base of the raw-driver adapters that run on poolbridge's own pool engine.

Each raw adapter (:mod:`poolbridge.adapters.raw`) is a table plus a little glue: the
driver shim to use, the extra to install, and how to run one scalar query on the driver's
connection. Everything else (translation, opening, the Pool handle) lives here once.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, ClassVar

from poolbridge.adapters._ha import ha_rows
from poolbridge.adapters.base import Adapter, Translation, enforce, require_modules
from poolbridge.config.model import PoolConfig
from poolbridge.engine.checkout import DriverShim
from poolbridge.engine.handle import EnginePool
from poolbridge.pool.hooks import Hooks

__all__ = ["ENGINE_EMULATED", "EngineBackedAdapter", "engine_under_orm"]

#: every pool knob the engine provides, and how
ENGINE_EMULATED: Mapping[str, str] = {
    "min_size": "emulated: poolbridge engine opens min_size at start and refills in background",
    "max_size": "emulated: poolbridge engine hard cap (opening and closing connections count)",
    "acquire_timeout": "emulated: poolbridge engine raises PoolTimeout with diagnostics",
    "max_lifetime": "emulated: poolbridge engine recycles by age, jitter -10%..0",
    "max_idle": "emulated: poolbridge engine closes idle connections above min_size",
    "pre_ping": "emulated: poolbridge engine pings before handing out a reused connection",
    "max_waiting": "emulated: poolbridge engine refuses with TooManyRequests",
    "reset": "emulated: poolbridge engine (rollback only when the driver reports a "
    "transaction; full = driver reset + on_connect replay, or replace)",
    "leak_timeout": "emulated: poolbridge engine leak tracker (acquire stack, on_leak)",
    "retry": "emulated: poolbridge engine connect retry, bounded by acquire_timeout",
}


def engine_under_orm(host: str, *, opened: str, notes: Mapping[str, str]) -> dict[str, str]:
    """The knob table of poolbridge's engine running UNDER an ORM (Tortoise's backend
    client, peewee-async's pool backend): the same engine, so the same table, with ``host``
    naming where it sits, ``opened`` when min_size is opened, and ``notes`` (knob -> text,
    appended as is) where the ORM's own behaviour is worth contrasting."""
    table = {
        "min_size": f"{host}: opened at {opened}, refilled",
        "max_size": f"{host}: hard cap, FIFO hand-off to waiters",
        "acquire_timeout": f"{host}: PoolTimeout",
        "connect_timeout": "passed to the driver's connect by poolbridge's driver shim",
        "max_lifetime": f"{host}: recycle by age with jitter",
        "max_idle": f"{host}: idle connections above min_size are closed",
        "pre_ping": f"{host}: ping at checkout, dead connections replaced",
        "max_waiting": f"{host}: TooManyRequests beyond max_waiting queued callers",
        "reset": f"{host}: rollback only when the driver says a transaction is open",
        "statement_timeout": "set on every new connection by poolbridge's driver shim",
        "isolation_level": "set on every new connection by poolbridge's driver shim",
        "session": "set on every new connection by poolbridge's driver shim",
        "statement_cache": "driver option set by poolbridge's driver shim",
        "ssl": "translated for the driver's connect by poolbridge's driver shim",
        "password": "a provider resolved per new connection",
        "driver_options": "passed to the driver's connect untouched by poolbridge's driver shim",
        "leak_timeout": f"{host}: leak tracking with the acquiring stack",
        "retry": f"{host}: capped exponential backoff on connect",
    }
    for knob, note in notes.items():
        table[knob] += note
    return table


class EngineBackedAdapter(Adapter):
    """A raw driver adapter: ``acquire()`` yields the driver's own connection object and
    ``.native`` is the :class:`~poolbridge.engine.checkout.Engine`."""

    #: "module:Class" of the driver shim
    shim: ClassVar[str]
    #: modules that must import for the adapter to work
    modules: ClassVar[tuple[str, ...]]

    def make_shim(self, config: PoolConfig) -> DriverShim:
        module, _, cls = self.shim.partition(":")
        shim: DriverShim = getattr(importlib.import_module(module), cls)()
        return shim

    def check_available(self, config: PoolConfig | None = None) -> None:
        require_modules(self.name, self.extra, *self.modules)

    def translate(self, config: PoolConfig) -> Translation:
        self.driver_for(config)  # raises for a backend/driver this adapter does not serve
        shim: Any = self.make_shim(config)
        native = shim.connect_kwargs(config)
        unsupported = dict(shim.unsupported(config))
        ha_emulated, _ = ha_rows(config, "engine")
        emulated = {**ENGINE_EMULATED, **ha_emulated}
        emulated = {k: v for k, v in emulated.items() if k not in unsupported}
        return Translation(native=native, emulated=emulated, unsupported=unsupported)

    async def open(self, config: PoolConfig, hooks: Hooks | None = None) -> EnginePool:
        self.check_available(config)
        enforce(self.name, config, self.translate(config))
        pool = EnginePool(config, self.make_shim(config), adapter=self.name, hooks=hooks)
        return await pool.open()
