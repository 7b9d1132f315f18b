"""``open_pool()``: open a pool through the adapter named in the call."""

from __future__ import annotations

from typing import Any

from .core.config import PoolConfig
from .core.hooks import Hooks
from .core.pool import Pool, PoolOpener
from .core.registry import get_adapter

__all__ = ["open_pool"]


def open_pool(
    config: PoolConfig, adapter: str, *, hooks: Hooks | None = None
) -> PoolOpener[Pool[Any]]:
    """Open a pool for ``config`` through ``adapter``.

    ``pool = await open_pool(cfg, adapter="sqlalchemy")`` or
    ``async with open_pool(cfg, adapter="asyncpg") as pool: ...`` (closed on exit).
    """

    async def factory() -> Pool[Any]:
        impl = get_adapter(adapter)
        impl.check_available(config)
        return await impl.open(config, hooks)

    return PoolOpener(factory)
