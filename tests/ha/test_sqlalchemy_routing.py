"""Several hosts and target_session_attrs through poolbridge's ``create_async_engine``, on a
real primary + streaming standby: asyncpg routed by poolbridge's connect wrapper
(drivers/hosts.py), psycopg by libpq. Every placement is checked server-side
(``pg_is_in_recovery()`` and ``inet_server_port()`` of the session the engine handed out),
through each SQLAlchemy entry point. The module's last case promotes the standby (it is
destructive): the pair is shared by the module to keep its share of ``make test`` small."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from poolbridge import PoolConfig
from poolbridge.adapters.registry import get_adapter
from poolbridge.adapters.sqlalchemy import close_engine, create_async_engine
from poolbridge.pool.retrying import is_connection_error
from poolbridge.testing.servers.replica import ReplicatedPostgres

pytestmark = [pytest.mark.server]

DRIVERS = ["asyncpg", "psycopg"]
_WHERE = "SELECT pg_is_in_recovery()::text || ':' || inet_server_port()"
_READ_ONLY_SESSION = "SELECT set_config('default_transaction_read_only', 'on', false)"


def _config(
    pair: ReplicatedPostgres, driver: str, order: tuple[Any, ...], **fields: Any
) -> PoolConfig:
    fields.setdefault("min_size", 0)
    fields.setdefault("max_size", 2)
    fields.setdefault("acquire_timeout", 10)
    return PoolConfig(url=pair.url(order, scheme=f"postgresql+{driver}"), **fields)


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


def _at(pair: ReplicatedPostgres, role: str) -> str:
    server = pair.standby if role == "standby" else pair.primary
    return f"{str(role == 'standby').lower()}:{server.port}"


@pytest.mark.asyncio
@pytest.mark.parametrize("driver", DRIVERS)
async def test_first_reachable_host_is_used_by_every_entry_point(
    pair: ReplicatedPostgres, driver: str, dead_host: str
) -> None:
    from poolbridge import open_pool

    impl = get_adapter("sqlalchemy")
    for hosts, expected in (
        (pair.hosts(("standby", "primary")), "standby"),
        ([dead_host, *pair.hosts(("primary", "standby"))], "primary"),
    ):
        config = _config(pair, driver, ("primary",), hosts=hosts)
        async with open_pool(config, adapter="sqlalchemy") as pool:
            for name, point in impl.entry_points(pool).items():
                async with point() as run:
                    assert str(await run(_WHERE)) == _at(pair, expected), (hosts, name)


@pytest.mark.asyncio
@pytest.mark.parametrize("driver", DRIVERS)
async def test_blackholed_first_host_costs_one_connect_timeout(
    pair: ReplicatedPostgres, driver: str, blackhole: str
) -> None:
    # libpq counts whole seconds, at least 2: the same bound for both drivers
    config = _config(pair, driver, ("primary",), hosts=[blackhole, *pair.hosts(("primary",))],
                     connect_timeout=2)  # fmt: skip
    async with _engine(config) as engine:
        start = time.monotonic()
        assert await _scalar(engine, _WHERE) == _at(pair, "primary")
        elapsed = time.monotonic() - start
    assert elapsed < 2 + 1.5, f"the blackholed host cost {elapsed:.2f}s (connect_timeout=2)"


@pytest.mark.asyncio
async def test_stock_asyncpg_shares_one_timeout_across_the_same_hosts(
    pair: ReplicatedPostgres, blackhole: str
) -> None:
    """The same ``?host=`` URL on stock SQLAlchemy + asyncpg: the blackholed first host eats
    the whole timeout and the second is never really tried (what the routing above fixes)."""
    from sqlalchemy.ext.asyncio import create_async_engine as stock_create

    hosts = "&".join(f"host={h}" for h in [blackhole, *pair.hosts(("primary",))])
    engine = stock_create(
        f"postgresql+asyncpg://{pair.primary.user}@/postgres?{hosts}", connect_args={"timeout": 2}
    )
    try:
        start = time.monotonic()
        with pytest.raises(Exception) as info:
            async with engine.connect():
                pass
        elapsed = time.monotonic() - start
    finally:
        await engine.dispose()
    assert isinstance(info.value, TimeoutError) or "timeout" in repr(info.value).lower(), info.value
    assert elapsed < 2 + 1.5


@pytest.mark.asyncio
@pytest.mark.parametrize("driver", DRIVERS)
async def test_targets_land_on_the_right_server(pair: ReplicatedPostgres, driver: str) -> None:
    for target, order, expected in (
        ("primary", ("standby", "primary"), "primary"),
        ("read-write", ("standby", "primary"), "primary"),
        ("standby", ("primary", "standby"), "standby"),
        ("read-only", ("primary", "standby"), "standby"),
        ("prefer-standby", ("primary", "standby"), "standby"),
    ):
        config = _config(pair, driver, order, target_session_attrs=target)
        async with _engine(config) as engine:
            assert await _scalar(engine, _WHERE) == _at(pair, expected), target


@pytest.mark.asyncio
@pytest.mark.parametrize("driver", DRIVERS)
async def test_prefer_standby_falls_back_to_the_primary_and_no_host_fits_is_a_connection_error(
    pair: ReplicatedPostgres, driver: str, dead_host: str
) -> None:
    hosts = [dead_host, *pair.hosts(("primary",))]
    fallback = _config(pair, driver, ("primary",), hosts=hosts,
                       target_session_attrs="prefer-standby")  # fmt: skip
    async with _engine(fallback) as engine:
        assert await _scalar(engine, _WHERE) == _at(pair, "primary")
    nothing = _config(pair, driver, ("primary",), hosts=hosts, target_session_attrs="standby",
                      acquire_timeout=3, retry={"attempts": 1})  # fmt: skip
    async with _engine(nothing) as engine:
        start = time.monotonic()
        with pytest.raises(Exception) as info:
            await _scalar(engine, "SELECT 1")
        assert time.monotonic() - start < 3 + 1
    assert is_connection_error(info.value), repr(info.value)
    assert str(pair.primary.port) in str(info.value)  # the error names the host it tried


@pytest.mark.asyncio
@pytest.mark.parametrize("driver", DRIVERS)
async def test_load_balance_random_spreads_connections(
    pair: ReplicatedPostgres, driver: str
) -> None:
    # in order, every connection goes to the first host; shuffled, 12 connections all on one
    # of two hosts has a chance of 2 / 2**12
    n = 12
    for balance, expected in (
        ("disable", {pair.primary.port}),
        ("random", {pair.primary.port, pair.standby.port}),
    ):
        config = _config(pair, driver, ("primary", "standby"), load_balance_hosts=balance,
                         max_size=n)  # fmt: skip
        async with _engine(config) as engine:
            conns = [await engine.connect() for _ in range(n)]
            try:
                ports = {
                    (await c.exec_driver_sql("SELECT inet_server_port()")).scalar() for c in conns
                }
            finally:
                for c in conns:
                    await c.close()
        assert ports == expected, balance


@pytest.mark.asyncio
@pytest.mark.parametrize("driver", DRIVERS)
async def test_read_only_error_replaces_the_connection_of_a_read_write_engine_only(
    pair: ReplicatedPostgres, driver: str
) -> None:
    """A session that turned read-only (as on a demoted primary) fails writes with 25006:
    a read-write engine replaces that connection; an engine without a target keeps it, as
    stock SQLAlchemy does."""
    for target, replaced in (("read-write", True), ("any", False)):
        config = _config(pair, driver, ("primary", "standby"), target_session_attrs=target,
                         max_size=1)  # fmt: skip
        async with _engine(config) as engine:
            async with engine.connect() as conn:
                first_pid = (await conn.exec_driver_sql("SELECT pg_backend_pid()")).scalar()
                await conn.exec_driver_sql(_READ_ONLY_SESSION)
                await conn.commit()
            with pytest.raises(Exception, match="read-only transaction") as info:
                async with engine.connect() as conn:
                    await conn.exec_driver_sql("CREATE TEMP TABLE ha_demoted (id int)")
            assert bool(getattr(info.value, "connection_invalidated", False)) is replaced
            async with engine.connect() as conn:
                pid = (await conn.exec_driver_sql("SELECT pg_backend_pid()")).scalar()
            assert (pid != first_pid) is replaced, target
        if replaced:  # server-side: the demoted session is gone
            async with _engine(_config(pair, driver, ("primary",))) as probe:
                alive = await _scalar(
                    probe, f"SELECT count(*) FROM pg_stat_activity WHERE pid = {first_pid}"
                )
            assert alive == 0


@pytest.mark.asyncio
async def test_fallback_connections_move_back_after_the_recheck_interval(
    pair: ReplicatedPostgres,
) -> None:
    engines = {}
    for driver in DRIVERS:
        config = _config(pair, driver, ("standby", "primary"), host_recheck_interval=0.5,
                         target_session_attrs="prefer-standby", max_size=1)  # fmt: skip
        engines[driver] = create_async_engine(config)
    # the control: without a re-check interval the fallback connection stays
    kept = _config(pair, "asyncpg", ("standby", "primary"), host_recheck_interval=None,
                   target_session_attrs="prefer-standby", max_size=1)  # fmt: skip
    engines["no re-check"] = create_async_engine(kept)
    await pair.standby.astop()
    try:
        for driver, engine in engines.items():
            assert await _scalar(engine, _WHERE) == _at(pair, "primary"), driver
        await pair.standby.astart()
        # the down-host memory (1 s after one failure) and the re-check interval pass; the
        # same engine (one connection) then lands on the standby again
        for driver, engine in engines.items():
            if driver == "no re-check":
                continue
            where, deadline = "", time.monotonic() + 6
            while time.monotonic() < deadline:
                where = str(await _scalar(engine, _WHERE))
                if where == _at(pair, "standby"):
                    break
                await asyncio.sleep(0.2)
            assert where == _at(pair, "standby"), f"{driver}: the fallback connection stayed"
        assert await _scalar(engines["no re-check"], _WHERE) == _at(pair, "primary")
    finally:
        await pair.standby.astart()
        for engine in engines.values():
            await close_engine(engine)


# -- the module's last case: destructive -------------------------------------------------------

#: a write only a primary accepts, and the port that served it
_WRITE = "SELECT txid_current()::text || ':' || inet_server_port()"


@pytest.mark.asyncio
async def test_failover_last_case_of_the_module(pair: ReplicatedPostgres) -> None:
    max_size, name = 5, "sa-failover"
    config = _config(pair, "asyncpg", ("primary", "standby"), target_session_attrs="read-write",
                     connect_timeout=1, acquire_timeout=3, min_size=2, max_size=max_size,
                     name=name)  # fmt: skip
    ok: list[tuple[float, int]] = []
    errors: list[BaseException] = []
    longest = 0.0
    stop = asyncio.Event()

    async def worker(engine: Any) -> None:
        nonlocal longest
        while not stop.is_set():
            start = time.monotonic()
            try:
                async with asyncio.timeout(5):
                    text = str(await _scalar(engine, _WRITE))
                ok.append((time.monotonic(), int(text.rsplit(":", 1)[1])))
            except Exception as exc:
                errors.append(exc)
                await asyncio.sleep(0.02)
            longest = max(longest, time.monotonic() - start)
            await asyncio.sleep(0.005)

    async with _engine(config) as engine:
        workers = [asyncio.create_task(worker(engine)) for _ in range(20)]
        try:
            await asyncio.sleep(0.5)
            assert ok and all(port == pair.primary.port for _, port in ok)
            killed = time.monotonic()
            await asyncio.to_thread(pair.kill_primary)
            await asyncio.to_thread(pair.promote)
            while time.monotonic() - killed < 6:
                if any(t > killed and port == pair.standby.port for t, port in ok):
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.3)  # the engine keeps serving after the first success
            # server-side: the new primary holds no more of this engine's sessions than
            # max_size
            async with _engine(_config(pair, "asyncpg", ("standby",))) as probe:
                held = await _scalar(
                    probe,
                    f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{name}'",
                )
        finally:
            stop.set()
            await asyncio.gather(*workers)
    served = [t for t, port in ok if t > killed and port == pair.standby.port]
    assert served, f"no write reached the new primary; errors: {errors[-3:]!r}"
    recovered = served[0] - killed
    print(f"sqlalchemy+asyncpg failover: read-write again {recovered:.2f}s after the kill")
    assert recovered < 5.0, f"recovered after {recovered:.2f}s"
    assert 1 <= held <= max_size, held
    assert longest < 3 + 1, f"a caller waited {longest:.2f}s"
    odd = [e for e in errors if not is_connection_error(e)]
    assert not odd, f"errors that are not connection-class: {odd[:3]!r}"
