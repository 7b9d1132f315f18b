"""poolbridge: one declarative async connection-pool config for every ORM and driver."""

from __future__ import annotations

from poolbridge import _aliases
from poolbridge._open import check_budget, open_pool
from poolbridge.config.loaders import load
from poolbridge.config.model import PoolConfig, RetryPolicy
from poolbridge.errors import (
    AdapterNotAvailable,
    ConfigError,
    ConnectError,
    ConnectionBudgetWarning,
    HookError,
    PoolBridgeError,
    PoolClosed,
    PoolTimeout,
    TooManyRequests,
    UnsupportedOptionError,
    UnsupportedOptionWarning,
    WrongEventLoop,
)
from poolbridge.pool.handle import Pool
from poolbridge.pool.hooks import ConnectionEvent, Hooks
from poolbridge.pool.retrying import retry

__version__ = "0.1.0"

_aliases.install()

__all__ = [
    "AdapterNotAvailable",
    "ConfigError",
    "ConnectError",
    "ConnectionBudgetWarning",
    "ConnectionEvent",
    "HookError",
    "Hooks",
    "Pool",
    "PoolBridgeError",
    "PoolClosed",
    "PoolConfig",
    "PoolTimeout",
    "RetryPolicy",
    "TooManyRequests",
    "UnsupportedOptionError",
    "UnsupportedOptionWarning",
    "WrongEventLoop",
    "__version__",
    "check_budget",
    "load",
    "open_pool",
    "retry",
]
