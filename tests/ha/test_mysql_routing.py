"""Several hosts on the MySQL drivers, against the system MariaDB (only read from): a
refused first host is skipped, a writable server counts as a primary (``@@read_only`` and
``@@innodb_read_only`` off) and never as a standby."""

from __future__ import annotations

import pytest

from poolbridge import PoolConfig, open_pool
from poolbridge.drivers.hosts import NoSuitableHost

pytestmark = [pytest.mark.server]

MYSQL = ["aiomysql", "asyncmy"]


@pytest.mark.asyncio
@pytest.mark.parametrize("adapter", MYSQL)
async def test_refused_first_host_skipped_and_primary_found(
    mysql_url: str, adapter: str, dead_host: str
) -> None:
    config = PoolConfig(
        url=mysql_url, hosts=[dead_host, "127.0.0.1:3306"], target_session_attrs="primary",
        min_size=1, max_size=1,
    )  # fmt: skip
    async with (
        open_pool(config, adapter=adapter) as pool,
        pool.acquire() as conn,
        conn.cursor() as cur,
    ):
        await cur.execute("SELECT @@port, @@global.read_only")
        assert tuple(await cur.fetchone()) == (3306, 0)


@pytest.mark.asyncio
@pytest.mark.parametrize("adapter", MYSQL)
async def test_writable_server_is_no_standby(mysql_url: str, adapter: str, dead_host: str) -> None:
    config = PoolConfig(
        url=mysql_url, hosts=[dead_host, "127.0.0.1:3306"], target_session_attrs="standby",
        min_size=0, max_size=1, acquire_timeout=2, retry={"attempts": 1},
    )  # fmt: skip
    async with open_pool(config, adapter=adapter) as pool:
        with pytest.raises(Exception) as info:
            async with pool.acquire():
                pass
    chain = [info.value, info.value.__cause__, info.value.__context__]
    assert any(isinstance(e, NoSuitableHost) for e in chain), chain
    assert "127.0.0.1:3306: does not satisfy target_session_attrs=standby" in str(
        next(e for e in chain if isinstance(e, NoSuitableHost))
    )
