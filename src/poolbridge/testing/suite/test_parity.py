"""Stock-parity rows: one scenario on the adapter's stock twin and through poolbridge.

The adapter's :class:`~poolbridge.adapters.base.StockTwin` builds both stacks: the stock one
by hand with the ORM's native arguments, poolbridge's through the adapter. Each row drives
both the ORM's way and compares what the user observes: values the server reports, the
classes the ORM derives, schema SQL, and error classes (an ``except`` written for the
stock stack must catch poolbridge's error: it is the stock class or a subclass of it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from poolbridge.adapters.base import StackSide, StockTwin, TwinSpec
from poolbridge.errors import ConnectError, PoolTimeout
from poolbridge.testing.harness import Case, Session

#: server-session values read on both sides (application_name only when the keys set it:
#: poolbridge's default is the pool name, stock's the driver's)
PROBES: dict[str, dict[str, str]] = {
    "postgresql": {
        "user": "SELECT current_user",
        "database": "SELECT current_database()",
        "search_path": "SELECT current_setting('search_path')",
        "DateStyle": "SELECT current_setting('DateStyle')",
        "TimeZone": "SELECT current_setting('TimeZone')",
        "client_encoding": "SELECT current_setting('client_encoding')",
        "isolation": "SELECT current_setting('transaction_isolation')",
        "statement_timeout": "SELECT current_setting('statement_timeout')",
    },
    "mysql": {
        "user": "SELECT CURRENT_USER()",
        "database": "SELECT DATABASE()",
        "sql_mode": "SELECT @@SESSION.sql_mode",
        "charset": "SELECT @@character_set_client",
        "collation": "SELECT @@collation_connection",
        "time_zone": "SELECT @@SESSION.time_zone",
        "isolation": "SELECT @@SESSION.tx_isolation",
        "pipes": "SELECT 'a' || 'b'",
    },
    "sqlite": {
        "journal_mode": "PRAGMA journal_mode",
        "foreign_keys": "PRAGMA foreign_keys",
    },
}
APPLICATION_NAME = "SELECT current_setting('application_name')"

#: the synchronous connection's identity: user and database (SQLite: the file)
SYNC_IDENTITY = {
    "postgresql": "SELECT current_user || '@' || current_database()",
    "mysql": "SELECT CONCAT(CURRENT_USER(), '@', DATABASE())",
    "sqlite": "SELECT file FROM pragma_database_list WHERE name = 'main'",
}


def _twin(s: Session) -> StockTwin:
    twin = s.case.adapter.stock_twin()
    assert twin is not None  # rows of adapters without a twin are closed
    return twin


def _spec(s: Session, **fields: Any) -> TwinSpec:
    values: dict[str, Any] = {
        "url": s.url,
        "driver": s.case.target.driver,
        "name": f"pbpar_{uuid.uuid4().hex[:8]}",
    }
    values.update(fields)
    return TwinSpec(**values)


@contextlib.contextmanager
def _own_file(s: Session) -> Iterator[str]:
    """The URL of the scenario's own SQLite file beside the column's (removed afterwards).

    SQLite's journal_mode is a property of the file, and other columns may use the same file
    at the same time (a stock Tortoise client switches it to WAL): session values compared
    between two stacks must not see another column's change. Other backends: the URL.
    """
    scheme, sep, rest = s.url.partition(":///")
    path, mark, query = rest.partition("?")
    if s.backend != "sqlite" or not sep or not path or path == ":memory:":
        yield s.url
        return
    private = f"{path}.{uuid.uuid4().hex[:8]}"
    try:
        yield f"{scheme}{sep}{private}{mark}{query}"
    finally:
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(private + suffix)


@contextlib.asynccontextmanager
async def _built(make: Callable[[], Awaitable[StackSide]]) -> AsyncIterator[StackSide]:
    side = await make()
    try:
        yield side
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(side.close(), 10)


class _Ok:
    """A scenario that raised nothing, with its value."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"ok({self.value!r})"


async def _outcome(run: Callable[[], Awaitable[Any]]) -> _Ok | BaseException:
    try:
        return _Ok(await run())
    except Exception as exc:  # the class is what is compared
        return exc


def _name(outcome: _Ok | BaseException) -> str:
    # classes only: a driver's message may quote connection parameters
    if isinstance(outcome, _Ok):
        return repr(outcome)
    return f"{type(outcome).__module__}.{type(outcome).__qualname__}"


def _assert_same(what: str, stock: _Ok | BaseException, ours: _Ok | BaseException) -> None:
    """Ours behaves as stock: the same value, or an error an ``except`` for stock's catches."""
    if isinstance(stock, _Ok):
        assert isinstance(ours, _Ok) and ours.value == stock.value, (
            f"{what}: stock gave {_name(stock)}, poolbridge {_name(ours)}"
        )
        return
    assert isinstance(ours, type(stock)), (
        f"{what}: stock raised {_name(stock)}, poolbridge {_name(ours)} (not a subclass: an "
        "except clause written for the stock stack misses it)"
    )


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the errors it chains (``__cause__``, else ``__context__``)."""
    out: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in out:
        out.append(current)
        current = current.__cause__ or current.__context__
    return out


def _assert_same_connect_failure(
    what: str, stock: _Ok | BaseException, ours: _Ok | BaseException
) -> None:
    """A connection that cannot be made: stock's class, or poolbridge's ConnectError (one
    error type for "cannot reach the server" on every pool) chaining an error of a class
    in stock's chain (the driver's error the ORM wraps)."""
    assert not isinstance(stock, _Ok), f"{what}: stock connected"
    if isinstance(ours, type(stock)):
        return
    assert isinstance(ours, ConnectError), (
        f"{what}: stock raised {_name(stock)}, poolbridge {_name(ours)} (neither a subclass "
        "nor a ConnectError)"
    )
    stock_types = tuple(type(e) for e in _chain(stock))
    assert any(isinstance(e, stock_types) for e in _chain(ours)), (
        f"{what}: stock raised {' <- '.join(_name(e) for e in _chain(stock))}; poolbridge's "
        f"ConnectError chains none of them ({' <- '.join(_name(e) for e in _chain(ours))})"
    )


# -- identity ---------------------------------------------------------------------------------


async def _identity(s: Session) -> None:
    twin, table = _twin(s), f"pb_par_{uuid.uuid4().hex[:8]}"
    seen: dict[str, tuple[dict[str, Any], list[str]]] = {}
    for side, make in (("stock", twin.stock), ("poolbridge", twin.ours)):
        async with _built(lambda make=make: make(_spec(s))) as stack:  # type: ignore[misc]
            await stack.connect()
            seen[side] = (dict(stack.identity()), await stack.ddl(table))
    (stock_id, stock_ddl), (ours_id, ours_ddl) = seen["stock"], seen["poolbridge"]
    assert stock_id or stock_ddl, "the twin reports no identity and no schema SQL"
    assert ours_id == stock_id
    assert ours_ddl == stock_ddl


@pytest.mark.poolbridge_requirement("parity_identity")
def test_identity_and_schema_sql_are_stock(poolbridge_case: Case) -> None:
    poolbridge_case.run(_identity)


# -- session values -----------------------------------------------------------------------------


async def _session_values(stack: StackSide, probes: dict[str, str]) -> dict[str, Any]:
    await stack.connect()
    return {k: await stack.scalar(sql) for k, sql in probes.items()}


async def _session_pair(twin: StockTwin, spec: TwinSpec, probes: dict[str, str]) -> dict[str, Any]:
    """The probes on the stock side; asserts poolbridge's side reports the same."""
    async with _built(lambda: twin.stock(spec)) as stock:
        expected = await _session_values(stock, probes)
    async with _built(lambda: twin.ours(spec)) as ours:
        got = await _session_values(ours, probes)
    assert got == expected, f"stock connect keys given: {sorted(spec.keys) or 'none'}"
    return expected


async def _session(s: Session) -> None:
    with _own_file(s) as url:
        await _session_on(s, url)


async def _session_on(s: Session, url: str) -> None:
    twin = _twin(s)
    probes = dict(PROBES[s.backend])
    defaults = await _session_pair(twin, _spec(s, url=url), probes)
    keys = dict(twin.session_keys(s.backend, s.case.target.driver))
    if not keys:
        return
    if s.backend == "postgresql":
        probes["application_name"] = APPLICATION_NAME
    keyed = await _session_pair(twin, _spec(s, url=url, keys=keys), probes)
    changed = {k for k in keyed if defaults.get(k) != keyed[k]}
    assert changed, f"the twin's session keys {sorted(keys)} changed nothing the server reports"


@pytest.mark.poolbridge_requirement("parity_session")
def test_session_values_are_stock(poolbridge_case: Case) -> None:
    poolbridge_case.run(_session)


# -- errors ---------------------------------------------------------------------------------------


async def _after_close(stack: StackSide) -> _Ok | BaseException:
    await stack.connect()
    assert await stack.scalar("SELECT 1") == 1
    await stack.close()
    return await _outcome(lambda: asyncio.wait_for(stack.scalar("SELECT 1"), 10))


async def _closed(s: Session) -> None:
    twin, spec = _twin(s), _spec(s)
    async with _built(lambda: twin.stock(spec)) as stock:
        expected = await _after_close(stock)
    async with _built(lambda: twin.ours(spec)) as ours:
        got = await _after_close(ours)
    _assert_same("a query after close", expected, got)


@pytest.mark.poolbridge_requirement("parity_closed")
def test_closed_stack_raises_as_stock(poolbridge_case: Case) -> None:
    poolbridge_case.run(_closed)


class _StillWaiting:
    """An exhausted pool that kept the caller waiting past the scenario's bound."""

    def __repr__(self) -> str:
        return "still waiting"


async def _when_exhausted(stack: StackSide, bound: float) -> _Ok | BaseException | _StillWaiting:
    await stack.connect()
    held, done = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        # another task: ORMs keep a task-local connection the same task would reuse
        async with stack.hold():
            held.set()
            await done.wait()

    task = asyncio.create_task(holder())
    try:
        await asyncio.wait_for(held.wait(), 10)
        try:
            return _Ok(await asyncio.wait_for(stack.scalar("SELECT 1"), bound))
        except TimeoutError as exc:
            if type(exc) is TimeoutError:  # asyncio.wait_for's own: nothing was raised
                return _StillWaiting()
            return exc
        except Exception as exc:  # the class is what is compared
            return exc
    finally:
        done.set()
        await asyncio.wait_for(task, 10)


async def _exhausted(s: Session) -> None:
    twin, timeout = _twin(s), 0.2
    spec = _spec(s, min_size=1, max_size=1, timeout=timeout)
    async with _built(lambda: twin.ours(spec)) as ours:
        got = await _when_exhausted(ours, timeout * 3)
    async with _built(lambda: twin.stock(spec)) as stock:
        expected = await _when_exhausted(stock, timeout * 3)
    assert not isinstance(got, _Ok), "an exhausted pool handed out a second connection"
    if isinstance(expected, (_StillWaiting, _Ok)):
        # the stock pool waits forever (or has no limit: peewee-async's SQLite opens a
        # connection per acquire); max_size and acquire_timeout are poolbridge's knobs
        assert isinstance(got, PoolTimeout), f"stock gave {expected!r}; poolbridge {got!r}"
        return
    assert not isinstance(got, _StillWaiting), f"stock raised {_name(expected)}; ours waited"
    _assert_same("a query on an exhausted pool", expected, got)


@pytest.mark.poolbridge_requirement("parity_exhausted")
def test_exhausted_pool_raises_as_stock(poolbridge_case: Case) -> None:
    poolbridge_case.run(_exhausted)


def _missing_database(url: str, backend: str) -> str:
    tag = uuid.uuid4().hex[:8]
    head, _, _ = url.rpartition("/")
    if backend == "sqlite":
        return f"{head}/pb_no_such_dir_{tag}/x.db"
    query = url.partition("?")[2]
    return f"{head}/pb_no_such_db_{tag}" + (f"?{query}" if query else "")


async def _connect_and_query(stack: StackSide) -> Any:
    await stack.connect()
    return await stack.scalar("SELECT 1")


async def _broken(s: Session) -> None:
    twin = _twin(s)
    spec = _spec(s, url=_missing_database(s.url, s.backend), timeout=0.5, fail_fast=True)
    async with _built(lambda: twin.stock(spec)) as stock:
        expected = await _outcome(lambda: asyncio.wait_for(_connect_and_query(stock), 15))
    async with _built(lambda: twin.ours(spec)) as ours:
        got = await _outcome(lambda: asyncio.wait_for(_connect_and_query(ours), 15))
    _assert_same_connect_failure("connecting to a missing database", expected, got)


@pytest.mark.poolbridge_requirement("parity_broken")
def test_missing_database_raises_as_stock(poolbridge_case: Case) -> None:
    poolbridge_case.run(_broken)


# -- the synchronous connection, the pool object, TLS ---------------------------------------------


async def _sync(s: Session) -> None:
    twin, spec, sql = _twin(s), _spec(s), SYNC_IDENTITY[s.backend]
    seen: dict[str, tuple[Any, Any]] = {}
    for side, make in (("stock", twin.stock), ("poolbridge", twin.ours)):
        async with _built(lambda make=make: make(spec)) as stack:  # type: ignore[misc]
            await stack.connect()
            seen[side] = (await stack.sync_scalar(sql), await stack.scalar(sql))
    assert seen["stock"][0] == seen["stock"][1], "stock: sync and async connections differ"
    assert seen["poolbridge"] == seen["stock"]


@pytest.mark.poolbridge_requirement("parity_sync")
def test_sync_connection_identity_is_stock(poolbridge_case: Case) -> None:
    poolbridge_case.run(_sync)


def _assert_surface(expected: Any, got: Any, state: str) -> None:
    assert expected, "the twin reports no pool attribute"
    got = got or {}
    missing = sorted(set(expected) - set(got))
    assert not missing, f"{state}: the pool has no {missing}"
    assert {k: got[k] for k in expected} == expected, state


async def _pool(s: Session) -> None:
    twin, spec = _twin(s), _spec(s, min_size=1, max_size=4)
    async with _built(lambda: twin.stock(spec)) as stock, _built(lambda: twin.ours(spec)) as ours:
        for stack in (stock, ours):
            await stack.connect()
        _assert_surface(stock.pool_surface(), ours.pool_surface(), "idle")
        held = []
        for stack in (stock, ours):
            # one after the other: an ORM's task-local connection (peewee-async's) is shared
            # by every database, a second hold() here would reuse the first's
            async with stack.hold():
                held.append(stack.pool_surface())
        _assert_surface(held[0], held[1], "one connection in use")


@pytest.mark.poolbridge_requirement("parity_pool")
def test_pool_attributes_are_stock(poolbridge_case: Case) -> None:
    poolbridge_case.run(_pool)


async def _ssl(s: Session) -> None:
    twin = _twin(s)
    form = twin.ssl_form(s.backend, s.case.target.driver)
    spec = _spec(s, ssl=form, timeout=0.5, fail_fast=True)
    async with _built(lambda: twin.stock(spec)) as stock:
        expected = await _outcome(lambda: asyncio.wait_for(_connect_and_query(stock), 15))
    async with _built(lambda: twin.ours(spec)) as ours:
        got = await _outcome(lambda: asyncio.wait_for(_connect_and_query(ours), 15))
    if isinstance(expected, _Ok):
        _assert_same(f"ssl={form!r}", expected, got)
    else:
        _assert_same_connect_failure(f"ssl={form!r}", expected, got)


@pytest.mark.poolbridge_requirement("parity_ssl")
def test_ssl_form_meets_the_server_as_stock(poolbridge_case: Case) -> None:
    poolbridge_case.run(_ssl)
