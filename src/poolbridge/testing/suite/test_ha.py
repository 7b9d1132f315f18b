"""The high-availability rows: several hosts and ``target_session_attrs`` on a primary and a
standby of the suite's own (:mod:`poolbridge.testing.ha`), never on the dburl's server.

Where a connection landed is read server-side: the session's recovery / read_only state and
the port of the server that answered. The reading rows share one pair per session;
``failover`` (a fault row: it kills a primary) starts a fresh pair for each run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from poolbridge.config.model import PoolConfig
from poolbridge.pool.retrying import is_connection_error
from poolbridge.testing.admin import in_ci
from poolbridge.testing.ha import (
    WRITER,
    WRITES_TABLE,
    Pair,
    PairSource,
    PairUnavailable,
    Role,
    with_host,
)
from poolbridge.testing.harness import Case, Session

#: the failover row's bounds (the issue's acceptance numbers)
RECOVERY_BOUND = 5.0
FAILOVER_TASKS = 200
FAILOVER_ACQUIRE_TIMEOUT = 3.0
FAILOVER_MAX_SIZE = 5
ROLES: tuple[Role, ...] = ("primary", "standby")


def _unavailable(exc: PairUnavailable) -> None:
    if in_ci():
        pytest.fail(f"{exc} (CI=true: a replicated pair that cannot start is a failure)")
    pytest.skip(str(exc))


def _pairs(case: Case) -> PairSource:
    if case.pairs is None:  # a Case built by hand: a source of its own
        case.pairs = PairSource()
    return case.pairs


def _shared(case: Case) -> Pair:
    try:
        return _pairs(case).shared(case.target.backend)
    except PairUnavailable as exc:
        _unavailable(exc)
        raise  # unreachable: skip/fail raised


def _config(s: Session, pair: Pair, url: str | None = None, **fields: Any) -> PoolConfig:
    """A small pool of the column's stack on ``pair``; ``host_recheck_interval`` is left out
    where the stack cannot honour it (psycopg_pool replaces connections by age only)."""
    values: dict[str, Any] = {
        "url": url or pair.url,
        "driver": s.case.target.driver,
        "name": f"pbsuite_{uuid.uuid4().hex[:8]}",
        "min_size": 1,
        "max_size": 2,
        "acquire_timeout": 10.0,
        "connect_timeout": 5.0,
    }
    values.update(fields)
    config = PoolConfig(**values)
    if "host_recheck_interval" in s.case.adapter.translate(config).unsupported:
        config = dataclasses.replace(config, host_recheck_interval=None)
    return config


async def _where(s: Session, pair: Pair, entry: str | None = None, **fields: Any) -> str:
    """Where a connection of a fresh pool of ``fields`` lands ("<standby 0/1>:<port>")."""
    pool = await s.open(_config(s, pair, **fields))
    try:
        async with s.use(pool, entry) as run:
            return str(await run(pair.where_sql))
    finally:
        await pool.close(timeout=2)


@contextlib.contextmanager
def _refused() -> Iterator[str]:
    """A loopback address nothing listens on: connects are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    yield f"127.0.0.1:{port}"


@contextlib.contextmanager
def _blackhole() -> Iterator[str]:
    """A loopback address that accepts TCP and never answers (a host gone without a reset)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


# -- the reading rows (one shared pair) -----------------------------------------------------


async def _hosts_order(s: Session, pair: Pair) -> None:
    for order in (("standby", "primary"), ("primary", "standby")):
        where = await _where(s, pair, hosts=pair.hosts(*order))
        assert where == pair.where(order[0]), f"hosts {order}: landed on {where}"
    with _refused() as dead:
        where = await _where(s, pair, hosts=[dead, *pair.hosts("primary")])
        assert where == pair.where("primary"), f"a refused first host: landed on {where}"
    # libpq (psycopg) counts connect_timeout in whole seconds, at least 2
    bound = 2 if s.case.target.driver == "psycopg" else 1
    with _blackhole() as silent:
        started = time.monotonic()
        where = await _where(s, pair, hosts=[silent, *pair.hosts("primary")], connect_timeout=bound)
        took = time.monotonic() - started
        assert where == pair.where("primary"), f"a silent first host: landed on {where}"
        assert took < bound + 1.5, (
            f"a first host that never answers cost {took:.2f}s (connect_timeout={bound})"
        )


@pytest.mark.poolbridge_requirement("hosts_order")
def test_hosts_order(poolbridge_case: Case) -> None:
    pair = _shared(poolbridge_case)
    poolbridge_case.run(lambda s: _hosts_order(s, pair))


async def _target(s: Session, pair: Pair, targets: tuple[str, ...], want: Role) -> None:
    wrong_first: tuple[Role, Role] = (
        ("standby", "primary") if want == "primary" else ("primary", "standby")
    )
    for target in targets:
        where = await _where(s, pair, hosts=pair.hosts(*wrong_first), target_session_attrs=target)
        assert where == pair.where(want), f"target_session_attrs={target}: landed on {where}"


@pytest.mark.poolbridge_requirement("target_primary")
@pytest.mark.poolbridge_entry_points
def test_target_primary(poolbridge_case: Case) -> None:
    pair = _shared(poolbridge_case)
    poolbridge_case.run(lambda s: _target(s, pair, ("primary", "read-write"), "primary"))


@pytest.mark.poolbridge_requirement("target_standby")
@pytest.mark.poolbridge_entry_points
def test_target_standby(poolbridge_case: Case) -> None:
    pair = _shared(poolbridge_case)
    targets = ("standby", "read-only", "prefer-standby")
    poolbridge_case.run(lambda s: _target(s, pair, targets, "standby"))


async def _standby_down(s: Session, pair: Pair) -> None:
    # the standby's place in the list refuses connections, as a stopped standby does
    with _refused() as down:
        where = await _where(
            s, pair, hosts=[down, *pair.hosts("primary")], target_session_attrs="prefer-standby"
        )
    assert where == pair.where("primary"), f"prefer-standby without a standby: {where}"
    # and with it back, prefer-standby prefers it again
    where = await _where(
        s, pair, hosts=pair.hosts("primary", "standby"), target_session_attrs="prefer-standby"
    )
    assert where == pair.where("standby"), f"prefer-standby with the standby up: {where}"


@pytest.mark.poolbridge_requirement("standby_down")
def test_standby_down(poolbridge_case: Case) -> None:
    pair = _shared(poolbridge_case)
    poolbridge_case.run(lambda s: _standby_down(s, pair))


# -- failover (fault row: a fresh pair, destroyed) ------------------------------------------


@dataclass
class _Load:
    ok: list[tuple[float, int]] = field(default_factory=list)  # (when, port that wrote)
    errors: list[BaseException] = field(default_factory=list)
    longest: float = 0.0
    #: server-side samples: (when, role, connections of the pool's login)
    counts: list[tuple[float, str, int]] = field(default_factory=list)


def _write_sql(backend: str) -> tuple[str, ...]:
    """Statements only a writable server accepts, then the port of the server."""
    table = WRITES_TABLE[backend]
    if backend == "postgresql":
        return (
            f"WITH w AS (INSERT INTO {table} (id) VALUES (1) RETURNING 1) "
            "SELECT inet_server_port() FROM w",
        )
    return (f"INSERT INTO {table} (id) VALUES (1)", "SELECT @@port")


async def _worker(s: Session, pool: Any, load: _Load, stop: asyncio.Event) -> None:
    statements = _write_sql(s.backend)
    while not stop.is_set():
        started = time.monotonic()
        try:
            async with asyncio.timeout(FAILOVER_ACQUIRE_TIMEOUT + 2):  # a hang fails below
                async with s.use(pool, "handle") as run:
                    port: Any = None
                    for sql in statements:
                        port = await run(sql)
            load.ok.append((time.monotonic(), int(port)))
        except Exception as exc:
            load.errors.append(exc)
            await asyncio.sleep(0.02)
        load.longest = max(load.longest, time.monotonic() - started)
        await asyncio.sleep(0.005)


async def _count(pair: Pair, role: Role, load: _Load, stop: asyncio.Event) -> None:
    """Sample one server's count of the pool's connections (they log in as the writer);
    the admin connections are opened before the kill, the old primary's dies with it."""
    from poolbridge.testing.admin import open_admin

    admin = await open_admin(with_host(pair.url, pair.hosts(role)[0]))
    try:
        while not stop.is_set():
            with contextlib.suppress(Exception):
                n = await admin.count_role_connections(WRITER)
                load.counts.append((time.monotonic(), role, n))
            await asyncio.sleep(0.05)
    finally:
        await admin.close()


async def _failover(s: Session, own: Any, writer_url: str, record: Any) -> None:
    pair: Pair = own.pair
    config = _config(
        s, pair, url=writer_url, hosts=pair.hosts("primary", "standby"),
        target_session_attrs="read-write", connect_timeout=1,
        acquire_timeout=FAILOVER_ACQUIRE_TIMEOUT, min_size=2, max_size=FAILOVER_MAX_SIZE,
    )  # fmt: skip
    load, stop = _Load(), asyncio.Event()
    pool = await s.open(config)
    workers = [asyncio.ensure_future(_worker(s, pool, load, stop)) for _ in range(FAILOVER_TASKS)]
    counters = [asyncio.ensure_future(_count(pair, r, load, stop)) for r in ROLES]
    killed = 0.0
    try:
        await asyncio.sleep(0.5)
        before = [port for _, port in load.ok]
        assert before, f"no write succeeded before the kill: {load.errors[-3:]!r}"
        assert set(before) == {pair.port("primary")}, f"writes before the kill went to {before}"
        killed = time.monotonic()
        await asyncio.to_thread(own.kill_primary)
        await asyncio.to_thread(own.promote)
        target = pair.port("standby")
        while time.monotonic() - killed < RECOVERY_BOUND + 1:
            if any(t > killed and port == target for t, port in load.ok):
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # the pool keeps serving after the first success
    finally:
        stop.set()
        await asyncio.gather(*workers, *counters)
    served = [t for t, port in load.ok if t > killed and port == pair.port("standby")]
    assert served, f"no write reached the promoted standby; last errors: {load.errors[-3:]!r}"
    recovered = served[0] - killed
    record("failover_recovery_seconds", round(recovered, 3))
    assert recovered < RECOVERY_BOUND, f"writes resumed {recovered:.2f}s after the kill"
    assert load.longest < FAILOVER_ACQUIRE_TIMEOUT + 1, (
        f"a caller waited {load.longest:.2f}s (acquire_timeout {FAILOVER_ACQUIRE_TIMEOUT:g})"
    )
    odd = [e for e in load.errors if not is_connection_error(e, read_write=True)]
    assert not odd, f"errors that are not connection-class: {odd[:3]!r}"
    for role in ROLES:
        seen = [n for _, r, n in load.counts if r == role]
        assert seen, f"the {role}'s count of the pool's connections was never read"
        assert max(seen) <= FAILOVER_MAX_SIZE, (
            f"the {role} held {max(seen)} connections of the pool (max_size {FAILOVER_MAX_SIZE})"
        )
    after = [n for t, r, n in load.counts if r == "standby" and t > served[0]]
    assert after and max(after) >= 1, "the new primary never held a connection of the pool"


@pytest.mark.poolbridge_requirement("failover")
def test_failover(poolbridge_case: Case, record_property: Any) -> None:
    backend = poolbridge_case.target.backend
    try:
        with _pairs(poolbridge_case).fresh(backend) as own:
            writer_url = own.add_writer()
            poolbridge_case.run(lambda s: _failover(s, own, writer_url, record_property))
    except PairUnavailable as exc:
        _unavailable(exc)
