"""The pool core lives once: both pools poolbridge implements use the same waiter queue and
lifetime rules, and every adapter asks drivers/ the same driver questions.

- by import scan: the engine and SQLAlchemy's BridgePool import ``pool.waiters`` and
  ``pool.lifetime`` and arm no timer of their own (no ``call_later``, no deque of futures);
- at run time: a live Engine's and a live BridgePool's queues are the same core class;
- the core queue on its own: FIFO hand-off, one timer for every deadline, max_waiting,
  a leaving waiter's grant passed on;
- the drift items: connect_timeout rounding, the statement backstop, the MySQL
  connection-lost codes and SQLite connection ids have one definition each.
"""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest

import poolbridge
from poolbridge.config.model import PoolConfig
from poolbridge.drivers.base import client_backstop, libpq_connect_timeout
from poolbridge.errors import TooManyRequests
from poolbridge.pool.stats import StatsRecorder
from poolbridge.pool.waiters import WaiterQueue, WaitExpired

PACKAGE = Path(poolbridge.__file__).parent

#: module -> the core modules it must import
CORE_USERS = {
    "engine/checkout.py": {"poolbridge.pool.waiters"},
    "engine/lifecycle.py": {"poolbridge.pool.waiters", "poolbridge.pool.lifetime"},
    "adapters/sqlalchemy/_pool.py": {"poolbridge.pool.waiters", "poolbridge.pool.lifetime"},
    "adapters/sqlalchemy/_state.py": {"poolbridge.pool.lifetime", "poolbridge.drivers.registry"},
    "adapters/sqlalchemy/_events.py": {"poolbridge.pool.deadlines", "poolbridge.drivers.registry"},
}

#: the pools' own modules: the queue, its timer and the lifetime draw are not here
POOL_MODULES = (
    "engine/checkout.py",
    "engine/lifecycle.py",
    "adapters/sqlalchemy/_pool.py",
    "adapters/sqlalchemy/_state.py",
)


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def _attribute_calls(path: Path) -> set[str]:
    """Names of every ``x.name(...)`` call and every imported name in ``path``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            names.add(node.func.attr)
        elif isinstance(node, ast.ImportFrom):
            names.update(a.name for a in node.names)
    return names


@pytest.mark.parametrize("module", sorted(CORE_USERS))
def test_pools_import_the_core_modules(module: str) -> None:
    missing = CORE_USERS[module] - _imports(PACKAGE / module)
    assert not missing, f"{module} does not import {sorted(missing)}"


@pytest.mark.parametrize("module", POOL_MODULES)
def test_pools_arm_no_timer_and_draw_no_lifetime_of_their_own(module: str) -> None:
    path = PACKAGE / module
    calls = _attribute_calls(path)
    assert "call_later" not in calls, f"{module} arms its own timer: use pool/waiters.py"
    assert "uniform" not in calls and "random" not in _imports(path), (
        f"{module} draws lifetimes itself: use pool/lifetime.py"
    )
    text = path.read_text()
    assert "deque[asyncio.Future" not in text, f"{module} keeps its own deque of waiters"
    assert "LIFETIME_JITTER =" not in text


def test_the_checker_sees_a_timer(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("import random\nloop.call_later(1, f)\nrandom.uniform(0, 1)\n")
    assert {"call_later", "uniform"} <= _attribute_calls(probe)
    assert "random" in _imports(probe)


@pytest.mark.asyncio
async def test_live_engine_and_bridge_pool_share_the_core_queue(tmp_path: Path) -> None:
    from sqlalchemy import text

    from poolbridge.adapters.sqlalchemy import close_engine, create_async_engine, warm_up
    from poolbridge.drivers.aiosqlite import AiosqliteShim
    from poolbridge.engine.checkout import Engine
    from poolbridge.pool.hooks import HookRunner, Hooks

    config = PoolConfig(url=f"sqlite+aiosqlite:///{tmp_path / 'core.db'}", min_size=1, max_size=1)
    engine = Engine(
        config,
        AiosqliteShim(),
        adapter="aiosqlite",
        hooks=HookRunner(Hooks()),
        recorder=StatsRecorder(min_size=1, max_size=1),
    )
    await engine.open()
    sa_engine = await warm_up(create_async_engine(config))
    try:
        bridge = sa_engine.sync_engine.pool
        assert type(engine._queue) is WaiterQueue
        assert type(bridge._queue) is WaiterQueue  # type: ignore[attr-defined]
        # the hot paths test the very deque the queue serves from
        assert engine._waiters is engine._queue.waiters
        assert bridge._waiters is bridge._queue.waiters  # type: ignore[attr-defined]
        async with engine.acquire() as conn:
            assert engine.server_id_of(conn) is not None
        async with sa_engine.connect() as sa_conn:
            assert (await sa_conn.execute(text("SELECT 1"))).scalar() == 1
        # SQLite connection ids: one counter, one type, on both paths
        sa_ids = sa_engine.sync_engine.pool._state.recorded_ids  # type: ignore[attr-defined]
        assert all(type(i) is int for i in [*engine.server_ids(), *sa_ids]), (
            engine.server_ids(),
            sa_ids,
        )
    finally:
        await engine.close()
        await close_engine(sa_engine)


# -- the core queue on its own --------------------------------------------------------------
def _queue(max_waiting: int = 0) -> tuple[WaiterQueue[str], list[str], StatsRecorder]:
    passed: list[str] = []
    rec = StatsRecorder(min_size=0, max_size=1)
    return WaiterQueue("core", max_waiting, rec, passed.append), passed, rec


@pytest.mark.asyncio
async def test_queue_hands_off_fifo_to_live_waiters_only() -> None:
    queue, _, rec = _queue()
    loop = asyncio.get_running_loop()
    far = loop.time() + 60
    futs = [queue.join(loop, far) for _ in range(3)]
    assert rec.pending == 3 and queue.armed
    futs[0].cancel()  # gone: skipped by the hand-off
    assert queue.hand("a") and queue.hand("b")
    assert not queue.hand("c")  # nobody left waiting
    assert [futs[1].result(), futs[2].result()] == ["a", "b"]
    queue.abandon(futs[0])
    assert rec.pending == 0 and not queue.armed and queue.deadlines == 0


@pytest.mark.asyncio
async def test_queue_expires_each_waiter_at_its_deadline_with_one_timer() -> None:
    queue, passed, rec = _queue()
    loop = asyncio.get_running_loop()
    now = asyncio.get_running_loop().time()
    late = queue.join(loop, now + 30)
    early = queue.join(loop, now + 0.05)  # earlier: re-arms the one timer
    with pytest.raises(WaitExpired):
        await asyncio.wait_for(early, 5)
    queue.abandon(early)
    assert not late.done() and len(queue) == 1 and queue.armed
    assert queue.hand("x") and late.result() == "x"
    assert not queue.armed and rec.pending == 0 and passed == []


@pytest.mark.asyncio
async def test_queue_passes_on_what_a_leaving_waiter_was_handed() -> None:
    queue, passed, _ = _queue()
    loop = asyncio.get_running_loop()
    fut = queue.join(loop, loop.time() + 30)
    assert queue.hand("conn")
    queue.abandon(fut)  # e.g. cancelled after the hand-off, before it ran
    assert passed == ["conn"] and len(queue) == 0


@pytest.mark.asyncio
async def test_queue_refuses_beyond_max_waiting_and_fails_all_at_close() -> None:
    queue, _, rec = _queue(max_waiting=1)
    loop = asyncio.get_running_loop()
    fut = queue.join(loop, loop.time() + 30)
    with pytest.raises(TooManyRequests, match="max_waiting=1"):
        queue.check_room()
    assert rec.refused == 1
    queue.close(lambda: RuntimeError("closed"))
    with pytest.raises(RuntimeError, match="closed"):
        await fut
    queue.abandon(fut)
    assert not queue.armed and len(queue) == 0


# -- driver knowledge: one definition each ---------------------------------------------------
@pytest.mark.parametrize("seconds", [0.2, 1.0, 1.2, 2.0, 2.4, 2.6, 10.0])
def test_every_libpq_path_rounds_connect_timeout_alike(seconds: float) -> None:
    from poolbridge.adapters.sqlalchemy._translate import translate
    from poolbridge.adapters.tortoise._translate import connection_dict
    from poolbridge.drivers.aiopg import AiopgShim
    from poolbridge.drivers.psycopg.conninfo import conninfo_kwargs

    pg = PoolConfig(url="postgresql://u@h/db", connect_timeout=seconds)
    expected = libpq_connect_timeout(seconds)
    assert expected >= seconds and expected >= 2
    psycopg = PoolConfig(url="postgresql+psycopg://u@h/db", connect_timeout=seconds)
    assert translate(psycopg).native["connect_args"]["connect_timeout"] == expected
    assert conninfo_kwargs(pg, None)["connect_timeout"] == expected
    assert AiopgShim().connect_kwargs(pg)["connect_timeout"] == expected
    creds = connection_dict(psycopg, "psycopg", None)["credentials"]
    assert creds["server_settings"]["connect_timeout"] == str(expected)


@pytest.mark.parametrize("statement_timeout", [0.1, 1.0, 5.0, 60.0])
def test_every_client_side_statement_backstop_is_the_same(statement_timeout: float) -> None:
    from poolbridge.adapters.sqlalchemy._translate import translate
    from poolbridge.drivers.asyncmy import AsyncmyShim
    from poolbridge.drivers.asyncpg import AsyncpgShim

    pg = PoolConfig(url="postgresql+asyncpg://u@h/db", statement_timeout=statement_timeout)
    my = PoolConfig(url="mysql+asyncmy://u@h/db", statement_timeout=statement_timeout)
    limit = client_backstop(pg)
    assert limit is not None and limit >= statement_timeout + 0.5
    assert translate(pg).native["connect_args"]["command_timeout"] == limit
    assert AsyncpgShim().connect_kwargs(pg)["command_timeout"] == limit
    assert translate(my).native["connect_args"]["read_timeout"] == limit
    assert AsyncmyShim().connect_kwargs(my)["read_timeout"] == limit


def test_mysql_connection_lost_codes_are_one_list() -> None:
    from poolbridge.drivers._mysql import MYSQL_CONNECTION_ERRNOS
    from poolbridge.pool.retrying import MYSQL_CONNECTION_CODES

    assert MYSQL_CONNECTION_ERRNOS is MYSQL_CONNECTION_CODES
    assert {2006, 2013, 1927} <= MYSQL_CONNECTION_CODES


@pytest.mark.parametrize("driver", ["asyncpg", "aiopg", "aiomysql", "asyncmy", "aiosqlite"])
def test_sqlalchemy_asks_the_engine_shims_about_driver_connections(driver: str) -> None:
    """is_closed / sever / server id of a driver connection: the engine's shim answers for
    SQLAlchemy too (drivers/registry.py), not a second copy in the adapter."""
    import importlib

    from poolbridge.adapters import raw
    from poolbridge.drivers.registry import native_ops

    adapter = {
        "asyncpg": raw.AsyncpgAdapter,
        "aiopg": raw.AiopgAdapter,
        "aiomysql": raw.AiomysqlAdapter,
        "asyncmy": raw.AsyncmyAdapter,
        "aiosqlite": raw.AiosqliteAdapter,
    }[driver]
    module, _, cls = adapter.shim.partition(":")
    assert type(native_ops(driver)) is getattr(importlib.import_module(module), cls)
