"""Several hosts through poolbridge's ``create_async_engine`` on the MySQL drivers
(``mysql+`` and ``mariadb+`` URLs), against a MariaDB primary + GTID replica of the test's
own: placement by ``@@read_only`` (checked server-side), fallback while the replica is
down, load balancing, a read-only error on a read-write engine, and a failover (kill the
primary, promote the replica) as the module's last, destructive case."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from poolbridge import PoolConfig
from poolbridge.adapters.sqlalchemy import close_engine, create_async_engine
from poolbridge.pool.retrying import is_connection_error
from poolbridge.testing.servers.replica import ReplicatedMariaDB

pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(shutil.which("mariadbd") is None, reason="needs the mariadbd binary"),
]

#: (URL scheme, driver): SQLAlchemy's MySQL and MariaDB dialects
STACKS = [("mysql", "aiomysql"), ("mariadb", "asyncmy")]
_WHERE = "SELECT CONCAT(@@global.read_only + 0, ':', @@port)"


@pytest.fixture(scope="module")
def maria() -> Iterator[ReplicatedMariaDB]:
    pair = ReplicatedMariaDB()
    try:
        pair.start()
        yield pair
    finally:
        pair.close()


def _config(
    pair: ReplicatedMariaDB, stack: tuple[str, str], hosts: list[str], **fields: Any
) -> PoolConfig:
    scheme, driver = stack
    fields.setdefault("min_size", 0)
    fields.setdefault("max_size", 2)
    fields.setdefault("acquire_timeout", 10)
    url = pair.primary.url.replace("mysql://", f"{scheme}+{driver}://", 1)
    return PoolConfig(url=url, hosts=hosts, **fields)


@asynccontextmanager
async def _engine(config: PoolConfig) -> AsyncIterator[Any]:
    engine = create_async_engine(config)
    try:
        yield engine
    finally:
        await close_engine(engine)


async def _scalar(engine: Any, sql: str) -> Any:
    async with engine.connect() as conn:
        return (await conn.exec_driver_sql(sql)).scalar()


@pytest.mark.asyncio
@pytest.mark.parametrize("stack", STACKS, ids=lambda s: "+".join(s))
async def test_targets_and_order_land_by_read_only(
    maria: ReplicatedMariaDB, stack: tuple[str, str], dead_host: str
) -> None:
    primary, replica = f"0:{maria.primary.port}", f"1:{maria.replica.port}"
    for hosts, target, expected in (
        (maria.hosts(("replica", "primary")), "any", replica),
        ([dead_host, *maria.hosts(("primary", "replica"))], "any", primary),
        (maria.hosts(("replica", "primary")), "primary", primary),
        (maria.hosts(("replica", "primary")), "read-write", primary),
        (maria.hosts(("primary", "replica")), "standby", replica),
        (maria.hosts(("primary", "replica")), "prefer-standby", replica),
        ([dead_host, *maria.hosts(("primary",))], "prefer-standby", primary),
    ):
        async with _engine(_config(maria, stack, hosts, target_session_attrs=target)) as engine:
            assert await _scalar(engine, _WHERE) == expected, (hosts, target)
            if stack[0] == "mariadb":
                assert engine.dialect.name == "mariadb"  # SQLAlchemy's MariaDB dialect, as stock


@pytest.mark.asyncio
async def test_load_balance_random_spreads_connections(maria: ReplicatedMariaDB) -> None:
    n = 12  # all on one of two hosts by chance: 2 / 2**12
    stack = STACKS[0]
    config = _config(maria, stack, maria.hosts(("primary", "replica")),
                     load_balance_hosts="random", max_size=n)  # fmt: skip
    async with _engine(config) as engine:
        conns = [await engine.connect() for _ in range(n)]
        try:
            ports = {(await c.exec_driver_sql("SELECT @@port")).scalar() for c in conns}
        finally:
            for c in conns:
                await c.close()
    assert ports == {maria.primary.port, maria.replica.port}


@pytest.mark.asyncio
@pytest.mark.parametrize("stack", STACKS, ids=lambda s: "+".join(s))
async def test_read_only_error_replaces_the_connection_of_a_read_write_engine(
    maria: ReplicatedMariaDB, stack: tuple[str, str]
) -> None:
    # a session whose transactions turned read-only fails writes with 1792, as a demoted
    # primary's would with 1290: the read-write engine replaces that connection
    maria.primary.execute("CREATE TABLE IF NOT EXISTS mysql.sa_ha_demoted (id int)")
    config = _config(maria, stack, maria.hosts(("primary", "replica")),
                     target_session_attrs="read-write", max_size=1)  # fmt: skip
    async with _engine(config) as engine:
        async with engine.connect() as conn:
            first = (await conn.exec_driver_sql("SELECT CONNECTION_ID()")).scalar()
            await conn.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")
        with pytest.raises(Exception, match="READ ONLY") as info:
            async with engine.connect() as conn:
                await conn.exec_driver_sql("INSERT INTO mysql.sa_ha_demoted VALUES (1)")
        assert getattr(info.value, "connection_invalidated", False) is True
        async with engine.connect() as conn:
            assert (await conn.exec_driver_sql("SELECT CONNECTION_ID()")).scalar() != first
            await conn.exec_driver_sql("INSERT INTO mysql.sa_ha_demoted VALUES (2)")
            await conn.commit()
    ids = [row[0] for row in maria.primary.execute("SELECT id FROM information_schema.processlist")]
    assert first not in ids  # server-side: the read-only session is gone


# -- the module's last case: destructive -------------------------------------------------------


@pytest.mark.asyncio
async def test_failover_last_case_of_the_module(maria: ReplicatedMariaDB) -> None:
    max_size = 5
    config = _config(maria, STACKS[0], maria.hosts(("primary", "replica")),
                     target_session_attrs="read-write", connect_timeout=1, acquire_timeout=3,
                     min_size=2, max_size=max_size)  # fmt: skip
    ok: list[tuple[float, str]] = []
    errors: list[BaseException] = []
    longest = 0.0
    stop = asyncio.Event()

    async def worker(engine: Any) -> None:
        nonlocal longest
        while not stop.is_set():
            start = time.monotonic()
            try:
                async with asyncio.timeout(5):
                    ok.append((time.monotonic(), str(await _scalar(engine, _WHERE))))
            except Exception as exc:
                errors.append(exc)
                await asyncio.sleep(0.02)
            longest = max(longest, time.monotonic() - start)
            await asyncio.sleep(0.005)

    target = f"0:{maria.replica.port}"
    async with _engine(config) as engine:
        workers = [asyncio.create_task(worker(engine)) for _ in range(20)]
        try:
            await asyncio.sleep(0.5)
            killed = time.monotonic()
            await asyncio.to_thread(maria.primary.kill)
            await asyncio.to_thread(maria.promote)
            while time.monotonic() - killed < 6:
                if any(t > killed and w == target for t, w in ok):
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.3)
            # server-side: the promoted replica holds no more client sessions than max_size
            # (its replication threads are system users)
            rows = await asyncio.to_thread(
                maria.replica.execute,
                "SELECT count(*) FROM information_schema.processlist "
                "WHERE command <> 'Daemon' AND user = 'root' AND id <> CONNECTION_ID()",
            )
        finally:
            stop.set()
            await asyncio.gather(*workers)
    served = [t for t, w in ok if t > killed and w == target]
    assert served, f"the promoted replica served nothing; errors: {errors[-3:]!r}"
    recovered = served[0] - killed
    print(f"sqlalchemy+aiomysql failover: served by the promoted replica {recovered:.2f}s after")
    assert recovered < 5.0, f"recovered after {recovered:.2f}s"
    assert 1 <= int(rows[0][0]) <= max_size, rows
    assert longest < 3 + 1, f"a caller waited {longest:.2f}s"
    odd = [e for e in errors if not is_connection_error(e)]
    assert not odd, f"errors that are not connection-class: {odd[:3]!r}"
