"""Several hosts on a real primary + streaming standby, for the PostgreSQL stacks that route
(psycopg through libpq; asyncpg and aiopg through poolbridge's drivers/hosts.py): what the
conformance rows (hosts_order, target_primary, target_standby, standby_down: suite/
test_ha.py, every stack) do not cover — the error when no host fits, the down-host memory,
the re-check of fallback connections, random balancing, and the documented TOML recipe of
a read pool beside the write pool. Placement is checked server-side:
``pg_is_in_recovery()`` and ``inet_server_port()`` of the session the pool handed out."""

from __future__ import annotations

import asyncio
import os
import re
import textwrap
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import poolbridge
from poolbridge import PoolConfig, open_pool
from poolbridge.drivers.base import raw_scalar
from poolbridge.errors import UnsupportedOptionWarning
from poolbridge.pool.retrying import is_connection_error
from poolbridge.testing.servers.replica import ReplicatedPostgres

pytestmark = [pytest.mark.server]

ADAPTERS = ["psycopg", "asyncpg", "aiopg"]
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
@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_one_hosts_entry_replaces_the_url_host(
    pair: ReplicatedPostgres, adapter: str
) -> None:
    config = _config(adapter, url=pair.standby.url, hosts=pair.hosts(("primary",)))
    assert await _where(config, adapter) == (False, pair.primary.port)


# -- the documented recipe: a read pool beside the write pool, from one TOML file ----------

DOC = Path(__file__).resolve().parents[2] / "docs" / "high-availability.md"
_DOC_HOSTS = "app@db1.internal:5432,db2.internal:5432,db3.internal:5432/app"


def _doc_block(lang: str, marker: str) -> str:
    """The first ```lang block of docs/high-availability.md containing ``marker``."""
    blocks = re.findall(rf"```{lang}\n(.*?)\n```", DOC.read_text(encoding="utf-8"), re.S)
    found = [b for b in blocks if marker in b]
    assert found, f"no {lang} block with {marker!r} in {DOC.name}"
    return found[0]


@pytest.mark.asyncio
@pytest.mark.parametrize("adapter", ["asyncpg", "psycopg"])
async def test_documented_replica_recipe_end_to_end(
    pair: ReplicatedPostgres,
    adapter: str,
    dead_host: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the TOML of the docs as written, its three hosts being a host that is down, the
    # standby and the primary (in that order: neither pool may rely on the order)
    toml = _doc_block("toml", "[pools.replica]")
    assert _DOC_HOSTS in toml, "the recipe's URL changed: update this test"
    hosts = ",".join([dead_host, *pair.hosts(("standby", "primary"))])
    (tmp_path / "poolbridge.toml").write_text(
        toml.replace(_DOC_HOSTS, f"postgres@{hosts}/postgres")
    )
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("POOLBRIDGE_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("POOLBRIDGE_REPLICA__MAX_SIZE", "60")  # the documented override
    # the documented raw-driver code, run as written (with this test's adapter)
    code = _doc_block("python", 'poolbridge.load("replica")').replace('"asyncpg"', repr(adapter))
    namespace: dict[str, Any] = {"poolbridge": poolbridge}
    body = textwrap.indent(f"{code}\nreturn writer, reader", "    ")
    exec(compile(f"async def _recipe():\n{body}", DOC.name, "exec"), namespace)
    with warnings.catch_warnings():  # psycopg: host_recheck_interval left at its default
        warnings.simplefilter("ignore", UnsupportedOptionWarning)
        writer, reader = await namespace["_recipe"]()
    try:
        assert writer.config.target_session_attrs == "read-write"
        assert (writer.config.max_size, reader.config.max_size) == (20, 60)
        assert reader.config.hosts == writer.config.hosts and len(reader.config.hosts) == 3
        assert reader.config.load_balance_hosts == "random"
        for _ in range(3):  # random order: every connection of the read pool finds the standby
            async with writer.acquire() as conn:
                assert await raw_scalar(conn, _WHERE) == f"false:{pair.primary.port}"
            async with reader.acquire() as conn:
                assert await raw_scalar(conn, _WHERE) == f"true:{pair.standby.port}"
    finally:
        await writer.close()
        await reader.close()


# -- failover: the module's last, destructive case -------------------------------------------
# the primary is killed under load and the standby promoted; the pool must serve read-write
# queries from the new primary within 5 s, with no caller waiting past its acquire_timeout
# and only connection-class errors in between. The fast case of ``make test`` (20 tasks);
# every stack under 200 tasks is the ``failover`` conformance row (tests/ha/
# test_failover_rows.py, ``make soak``).

RECOVERY_BOUND = 5.0
ACQUIRE_TIMEOUT = 3.0
#: a write only a primary accepts, and the port that served it
_WRITE = "SELECT txid_current()::text || ':' || inet_server_port()"


@dataclass
class Load:
    ok: list[tuple[float, int]] = field(default_factory=list)  # (time, server port)
    errors: list[BaseException] = field(default_factory=list)
    longest: float = 0.0


async def _worker(pool: object, load: Load, stop: asyncio.Event) -> None:
    while not stop.is_set():
        start = time.monotonic()
        try:
            async with asyncio.timeout(ACQUIRE_TIMEOUT + 2):  # a hang fails the test below
                async with pool.acquire() as conn:  # type: ignore[attr-defined]
                    text = str(await raw_scalar(conn, _WRITE))
            load.ok.append((time.monotonic(), int(text.rsplit(":", 1)[1])))
        except TimeoutError as exc:
            load.errors.append(exc)
        except Exception as exc:
            load.errors.append(exc)
            await asyncio.sleep(0.02)
        load.longest = max(load.longest, time.monotonic() - start)
        await asyncio.sleep(0.005)


async def _failover(pair: ReplicatedPostgres, adapter: str, tasks: int) -> float:
    config = PoolConfig(
        url=pair.url(("primary", "standby")), target_session_attrs="read-write",
        connect_timeout=1, acquire_timeout=ACQUIRE_TIMEOUT, min_size=2, max_size=5,
        host_recheck_interval=None if adapter == "psycopg" else 30.0,
    )  # fmt: skip
    load, stop = Load(), asyncio.Event()
    async with open_pool(config, adapter=adapter) as pool:
        workers = [asyncio.create_task(_worker(pool, load, stop)) for _ in range(tasks)]
        try:
            await asyncio.sleep(0.5)
            assert load.ok and all(port == pair.primary.port for _, port in load.ok)
            killed = time.monotonic()
            await asyncio.to_thread(pair.kill_primary)
            await asyncio.to_thread(pair.promote)
            while time.monotonic() - killed < RECOVERY_BOUND + 1:
                if any(t > killed and port == pair.standby.port for t, port in load.ok):
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.3)  # the pool keeps serving after the first success
        finally:
            stop.set()
            await asyncio.gather(*workers)
    served = [t for t, port in load.ok if t > killed and port == pair.standby.port]
    assert served, f"no write reached the new primary; errors: {load.errors[-3:]!r}"
    recovered = served[0] - killed
    assert recovered < RECOVERY_BOUND, f"recovered after {recovered:.2f}s"
    assert load.longest < ACQUIRE_TIMEOUT + 1, f"a caller waited {load.longest:.2f}s"
    odd = [e for e in load.errors if not is_connection_error(e)]
    assert not odd, f"errors that are not connection-class: {odd[:3]!r}"
    return recovered


@pytest.mark.asyncio
async def test_failover_asyncpg_last_case_of_the_module(pair: ReplicatedPostgres) -> None:
    # destructive (the primary is killed, the standby promoted): the module's last case
    recovered = await _failover(pair, "asyncpg", tasks=20)
    print(f"asyncpg failover: read-write again {recovered:.2f}s after the kill")
