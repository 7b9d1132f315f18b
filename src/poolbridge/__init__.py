"""poolbridge: one declarative async connection-pool config for every ORM and driver."""

from __future__ import annotations

from ._open import open_pool
from .core.config import PoolConfig, RetryPolicy
from .core.hooks import ConnectionEvent, Hooks
from .core.loaders import load
from .core.pool import Pool
from .core.retrying import retry
from .errors import (
    AdapterNotAvailable,
    ConfigError,
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

__version__ = "0.1.0"

__all__ = [
    "AdapterNotAvailable",
    "ConfigError",
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
    "load",
    "open_pool",
    "retry",
]
