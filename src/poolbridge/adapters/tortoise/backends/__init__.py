"""The Tortoise ``engine`` module poolbridge puts in a connection's config.

Tortoise picks a backend client by importing the connection's ``engine`` module path and
asking it for ``get_client_class(db_info)`` (or ``client_class``). poolbridge's connection
dicts name one module per backend (:data:`ENGINE_MODULES`: ``.asyncpg``, ``.psycopg``,
``.mysql``, ``.sqlite``), so Tortoise instantiates poolbridge's clients: subclasses of
Tortoise's own clients whose pool is poolbridge's, defined in modules whose path names the
backend as Tortoise's own do (its migration tools read ``__module__`` and the ``engine``
path). This package itself stays a valid ``engine`` path for configs that name it.

What the client needs beyond Tortoise's usual credentials travels in the credentials under
the key ``"poolbridge"`` as a :class:`TortoiseBinding` object. Tortoise copies credentials
shallowly, so the binding, an ``ssl.SSLContext`` or a password provider arrive untouched.

Importing this module does not import Tortoise or a driver: the client classes are
imported when Tortoise asks for one.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Protocol

from poolbridge.config.model import PoolConfig
from poolbridge.pool.hooks import HookRunner, Hooks
from poolbridge.pool.stats import StatsRecorder

__all__ = [
    "BINDING_KEY",
    "ENGINE_MODULES",
    "ConfigPassword",
    "OneLoopClient",
    "TortoiseBinding",
    "get_client_class",
]

#: credentials key carrying the :class:`TortoiseBinding`
BINDING_KEY = "poolbridge"

#: the ``engine`` module of each driver: its path names the backend, as Tortoise's own
#: ``tortoise.backends.<backend>`` do (Tortoise's migration tools read that name)
ENGINE_MODULES: dict[str, str] = {
    "asyncpg": f"{__name__}.asyncpg",
    "psycopg": f"{__name__}.psycopg",
    "asyncmy": f"{__name__}.mysql",
    "aiomysql": f"{__name__}.mysql",
    "aiosqlite": f"{__name__}.sqlite",
}


@dataclass(eq=False)
class TortoiseBinding:
    """What a poolbridge client needs: the pool config, the driver and the hooks.

    ``engine_config`` is ``config`` plus the driver options Tortoise's client relies on
    (autocommit, charset, sql_mode on MySQL). The repr names the pool only: Tortoise logs
    its whole connections config at DEBUG.
    """

    config: PoolConfig
    engine_config: PoolConfig
    driver: str
    hooks: Hooks | None = None

    def new_runner(self) -> HookRunner:
        return HookRunner(self.hooks or Hooks())

    def new_recorder(self) -> StatsRecorder:
        return StatsRecorder(min_size=self.config.min_size, max_size=self.config.max_size)

    def __repr__(self) -> str:
        return f"<poolbridge pool {self.config.name!r} driver={self.driver}>"


class _HasConfig(Protocol):
    config: PoolConfig


class ConfigPassword:
    """A password provider reading the PoolConfig (Tortoise resolves callables per connection).

    Handing Tortoise a provider instead of the string keeps the password out of its
    startup log (which prints a third of it) and out of the psycopg conninfo it logs.
    ``source`` is a PoolConfig or an object whose ``config`` is read at every call (a
    client's pool holder, whose config ``rotate(password=)`` replaces).
    """

    __slots__ = ("_source",)

    def __init__(self, source: PoolConfig | _HasConfig) -> None:
        self._source = source

    def __call__(self) -> Awaitable[str | None]:
        src = self._source
        config = src if isinstance(src, PoolConfig) else src.config
        return config.get_password()

    def __repr__(self) -> str:
        return "<poolbridge password provider>"


class OneLoopClient:
    """Mixed in before a Tortoise client class: the client is never swapped per event loop.

    Tortoise >= 1.1 replaces a client used from another event loop by a new one (a
    TortoiseLoopSwitchWarning), which would silently open a second poolbridge pool per
    loop — never closed, and past the connection budget max_size promises. A poolbridge
    pool belongs to the loop (and process) it was opened in: its acquire raises
    :class:`poolbridge.errors.WrongEventLoop` naming both instead.
    """

    def _check_loop(self) -> bool:
        return True


def get_client_class(db_info: dict[str, Any]) -> type[Any]:
    """Called by Tortoise with a connection dict whose ``engine`` names this package (saved
    configs may): the client of the driver's own module, the same class as from there."""
    binding = db_info.get("credentials", {}).get(BINDING_KEY)
    if not isinstance(binding, TortoiseBinding):
        raise LookupError(
            "a poolbridge Tortoise connection needs credentials['poolbridge']: build the "
            "config with poolbridge.adapters.tortoise.tortoise_config()"
        )
    module = importlib.import_module(ENGINE_MODULES[binding.driver])
    cls: type[Any] = module.get_client_class(db_info)
    return cls
