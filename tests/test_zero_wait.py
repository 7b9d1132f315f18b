"""acquire_timeout=0: SQLAlchemy's fail-at-once meaning where the pool has it, a refusal by
name everywhere else (never a warm-up that fails for want of time)."""

from __future__ import annotations

import pytest

from poolbridge import PoolConfig, UnsupportedOptionError, open_pool
from poolbridge.adapters.registry import get_adapter

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize("adapter", ["asyncpg", "aiopg", "aiomysql", "asyncmy", "psycopg"])
async def test_zero_acquire_timeout_is_refused_where_the_pool_cannot_fail_at_once(
    adapter: str,
) -> None:
    """acquire_timeout=0 (fail at once when exhausted) holds on SQLAlchemy only; the other
    pools refuse it by name at open instead of failing their warm-up."""
    backend = "mysql" if adapter in ("aiomysql", "asyncmy") else "postgresql"
    config = PoolConfig(url=f"{backend}://root@127.0.0.1/test", acquire_timeout=0)
    get_adapter(adapter).check_available(config)
    with pytest.raises(UnsupportedOptionError, match="acquire_timeout") as caught:
        await open_pool(config, adapter=adapter)
    assert "sqlalchemy adapter only" in str(caught.value)
