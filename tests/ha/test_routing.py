"""Several hosts and target_session_attrs on a real primary + streaming standby, for the
PostgreSQL stacks that route (psycopg through libpq; asyncpg and aiopg through
poolbridge's drivers/hosts.py). Every placement is checked server-side:
``pg_is_in_recovery()`` and ``inet_server_port()`` of the session the pool handed out."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from poolbridge import PoolConfig, open_pool
from poolbridge.drivers.base import raw_scalar
from poolbridge.testing.servers.replica import ReplicatedPostgres

pytestmark = [pytest.mark.server]

ADAPTERS = ["psycopg", "asyncpg", "aiopg"]
_READ_ONLY_SESSION = "SELECT set_config('default_transaction_read_only', 'on', false)"
_WHERE = "SELECT pg_is_in_recovery()::text || ':' || inet_server_port()"


def _config(adapter: str, **fields: Any) -> PoolConfig:
    if adapter == "psycopg":
        # psycopg_pool keeps a fallback connection until max_lifetime: no re-check there
        fields.setdefault("host_recheck_interval", None)
    fields.setdefault("min_size", 1)
    fields.setdefault("max_size", 2)
    fields.setdefault("acquire_timeout", 10)
    return PoolConfig(**fields)


async def _where(config: PoolConfig, adapter: str) -> tuple[bool, int]:
    """(in recovery, server port) of a connection from a fresh pool of ``config``."""
    async with open_pool(config, adapter=adapter) as pool, pool.acquire() as conn:
        text = await raw_scalar(conn, _WHERE)
    recovery, port = str(text).split(":")
    return recovery == "true", int(port)


@pytest.mark.asyncio
@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_hosts_order_first_reachable_host_is_used(
    pair: ReplicatedPostgres, adapter: str
) -> None:
    standby_first = _config(adapter, url=pair.url(("standby", "primary")))
    assert await _where(standby_first, adapter) == (True, pair.standby.port)
    primary_first = _config(adapter, url=pair.url(("primary", "standby")))
    assert await _where(primary_first, adapter) == (False, pair.primary.port)


@pytest.mark.asyncio
@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_hosts_order_refused_first_host_is_skipped(
    pair: ReplicatedPostgres, adapter: str, dead_host: str
) -> None:
    config = _config(adapter, url=pair.primary.url, hosts=[dead_host, *pair.hosts(("primary",))])
    assert await _where(config, adapter) == (False, pair.primary.port)


@pytest.mark.asyncio
@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_hosts_order_blackholed_first_host_costs_one_connect_timeout(
    pair: ReplicatedPostgres, adapter: str, blackhole: str
) -> None:
    # libpq counts whole seconds, at least 2: the same bound for every stack
    config = _config(
        adapter, url=pair.primary.url, hosts=[blackhole, *pair.hosts(("primary",))],
        connect_timeout=2,
    )  # fmt: skip
    start = time.monotonic()
    placed = await _where(config, adapter)
    elapsed = time.monotonic() - start
    assert placed == (False, pair.primary.port)
    assert elapsed < 2 + 1.5, f"the blackholed host cost {elapsed:.2f}s (connect_timeout=2)"


@pytest.mark.asyncio
@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("target", ["primary", "read-write"])
async def test_target_primary(pair: ReplicatedPostgres, adapter: str, target: str) -> None:
    config = _config(adapter, url=pair.url(("standby", "primary")), target_session_attrs=target)
    assert await _where(config, adapter) == (False, pair.primary.port)


@pytest.mark.asyncio
@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("target", ["standby", "read-only", "prefer-standby"])
async def test_target_standby(pair: ReplicatedPostgres, adapter: str, target: str) -> None:
    config = _config(adapter, url=pair.url(("primary", "standby")), target_session_attrs=target)
    assert await _where(config, adapter) == (True, pair.standby.port)


@pytest.mark.asyncio
@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_standby_down_prefer_standby_falls_back_to_the_primary(
    pair: ReplicatedPostgres, adapter: str, dead_host: str
) -> None:
    config = _config(
        adapter, url=pair.primary.url, hosts=[dead_host, *pair.hosts(("primary",))],
        target_session_attrs="prefer-standby",
    )  # fmt: skip
    assert await _where(config, adapter) == (False, pair.primary.port)


@pytest.mark.asyncio
@pytest.mark.parametrize("adapter", ["asyncpg", "aiopg"])
async def test_no_host_fits_is_a_connection_error_naming_every_host(
    pair: ReplicatedPostgres, adapter: str, dead_host: str
) -> None:
    from poolbridge.drivers.hosts import NoSuitableHost

    config = _config(
        adapter, url=pair.primary.url, hosts=[dead_host, *pair.hosts(("primary",))],
        target_session_attrs="standby", min_size=0, acquire_timeout=2,
        retry={"attempts": 1},
    )  # fmt: skip
    async with open_pool(config, adapter=adapter) as pool:
        start = time.monotonic()
        with pytest.raises(Exception) as info:
            async with pool.acquire():
                pass
        assert time.monotonic() - start < 2 + 1
    chain = [info.value, info.value.__cause__, info.value.__context__]
    found = [e for e in chain if isinstance(e, NoSuitableHost)]
    assert found, f"expected NoSuitableHost in {chain!r}"
    assert isinstance(found[0], ConnectionError)
    assert dead_host in str(found[0]) and f":{pair.primary.port}" in str(found[0])


@pytest.mark.asyncio
async def test_down_host_is_remembered_so_the_next_connect_does_not_pay(
    pair: ReplicatedPostgres, blackhole: str
) -> None:
    config = _config(
        "asyncpg", url=pair.primary.url, hosts=[blackhole, *pair.hosts(("primary",))],
        connect_timeout=1, min_size=1, max_size=2,
    )  # fmt: skip
    # the first connect (at open) paid the blackhole once
    async with open_pool(config, adapter="asyncpg") as pool, pool.acquire() as first:
        start = time.monotonic()
        async with pool.acquire() as second:  # a new connection: the host is skipped
            elapsed = time.monotonic() - start
            assert await second.fetchval("SELECT inet_server_port()") == pair.primary.port
        assert first is not second
    assert elapsed < 0.8, f"the remembered down host still cost {elapsed:.2f}s"


@pytest.mark.asyncio
@pytest.mark.parametrize("adapter", ["asyncpg", "aiopg"])
async def test_fallback_connection_moves_back_after_the_recheck_interval(
    pair: ReplicatedPostgres, adapter: str
) -> None:
    config = _config(
        adapter, url=pair.url(("standby", "primary")), target_session_attrs="prefer-standby",
        host_recheck_interval=0.5, min_size=1, max_size=1,
    )  # fmt: skip
    await pair.standby.astop()
    try:
        async with open_pool(config, adapter=adapter) as pool:
            async with pool.acquire() as conn:
                assert await raw_scalar(conn, _WHERE) == f"false:{pair.primary.port}"
            await pair.standby.astart()
            # the down-host memory (1 s after one failure) and the re-check interval pass
            deadline = time.monotonic() + 5
            where = ""
            while time.monotonic() < deadline:
                async with pool.acquire() as conn:
                    where = str(await raw_scalar(conn, _WHERE))
                if where == f"true:{pair.standby.port}":
                    break
                await asyncio.sleep(0.2)
            assert where == f"true:{pair.standby.port}", "the fallback connection stayed"
    finally:
        await pair.standby.astart()


@pytest.mark.asyncio
@pytest.mark.parametrize("adapter", ["asyncpg", "aiopg"])
async def test_read_only_error_breaks_the_connection_of_a_read_write_pool(
    pair: ReplicatedPostgres, adapter: str
) -> None:
    # a session that turned read-only (as on a demoted primary) fails writes with 25006:
    # for a read-write pool that connection is broken and must not be handed out again
    config = _config(
        adapter, url=pair.url(("primary", "standby")), target_session_attrs="read-write",
        min_size=1, max_size=1,
    )  # fmt: skip
    async with open_pool(config, adapter=adapter) as pool:
        async with pool.acquire() as conn:
            first_pid = await raw_scalar(conn, "SELECT pg_backend_pid()")
            await raw_scalar(conn, _READ_ONLY_SESSION)
        with pytest.raises(Exception, match="read-only transaction"):
            async with pool.acquire() as conn:
                assert await raw_scalar(conn, "SELECT pg_backend_pid()") == first_pid
                await raw_scalar(conn, "CREATE TEMP TABLE ha_demoted (id int)")
        async with pool.acquire() as conn:
            assert await raw_scalar(conn, "SELECT pg_backend_pid()") != first_pid
            assert await raw_scalar(conn, "SHOW default_transaction_read_only") == "off"


@pytest.mark.asyncio
@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_load_balance_random_spreads_connections_over_the_hosts(
    pair: ReplicatedPostgres, adapter: str
) -> None:
    # in order, every connection goes to the first host; shuffled, 16 connections all on one
    # of two hosts has a chance of 2 / 2**16
    n = 16
    for balance, expected in (("disable", {pair.primary.port}), ("random", None)):
        config = _config(
            adapter, url=pair.url(("primary", "standby")), load_balance_hosts=balance,
            min_size=n, max_size=n,
        )  # fmt: skip
        async with open_pool(config, adapter=adapter) as pool:
            held = [pool.acquire() for _ in range(n)]
            conns = [await cm.__aenter__() for cm in held]
            try:
                ports = {int(await raw_scalar(c, "SELECT inet_server_port()")) for c in conns}
            finally:
                for cm in held:
                    await cm.__aexit__(None, None, None)
        assert ports == (expected or {pair.primary.port, pair.standby.port}), balance


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("adapter", "driver"),
    [("tortoise", "asyncpg"), ("peewee_async", "aiopg"), ("peewee_async", "psycopg")],
)
@pytest.mark.parametrize(("target", "standby"), [("primary", False), ("standby", True)])
async def test_orm_adapters_route_through_their_own_entry_points(
    pair: ReplicatedPostgres, adapter: str, driver: str, target: str, standby: bool
) -> None:
    from poolbridge.adapters.registry import get_adapter

    order = ("standby", "primary") if target == "primary" else ("primary", "standby")
    config = _config(
        "psycopg" if driver == "psycopg" else adapter,
        url=pair.url(order), driver=driver, target_session_attrs=target,
    )  # fmt: skip
    impl = get_adapter(adapter)
    async with open_pool(config, adapter=adapter) as pool:
        for name, point in impl.entry_points(pool).items():
            async with point() as run:
                where = str(await run(_WHERE))
            expected = f"{str(standby).lower()}:{(pair.standby if standby else pair.primary).port}"
            assert where == expected, f"{adapter}/{driver} entry point {name}"


@pytest.mark.asyncio
@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_one_hosts_entry_replaces_the_url_host(
    pair: ReplicatedPostgres, adapter: str
) -> None:
    config = _config(adapter, url=pair.standby.url, hosts=pair.hosts(("primary",)))
    assert await _where(config, adapter) == (False, pair.primary.port)
