"""The engine's hot-path driver checks (drivers/state.py): the shims' plain functions are
handed to the engine only when they answer exactly as the shim's methods, i.e. when the
pool does not route between hosts (then ``is_closed()`` also retires fallback connections)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from poolbridge import PoolConfig
from poolbridge.drivers import state
from poolbridge.drivers.aiomysql import AiomysqlShim
from poolbridge.drivers.aiopg import AiopgShim
from poolbridge.drivers.aiosqlite import AiosqliteShim
from poolbridge.drivers.asyncmy import AsyncmyShim
from poolbridge.drivers.asyncpg import AsyncpgShim
from poolbridge.engine.checkout import Engine
from poolbridge.pool.hooks import HookRunner, Hooks
from poolbridge.pool.stats import StatsRecorder

PLAIN = [
    (AsyncmyShim, "mysql://root@127.0.0.1/db", state.asyncmy_is_closed, state.asyncmy_reusable),
    (AiomysqlShim, "mysql://root@127.0.0.1/db", state.aiomysql_is_closed, state.aiomysql_reusable),
    (AsyncpgShim, "postgresql://u@127.0.0.1/db", state.asyncpg_is_closed, state.asyncpg_reusable),
    (AiopgShim, "postgresql://u@127.0.0.1/db", state.aiopg_is_closed, state.aiopg_reusable),
    (AiosqliteShim, "sqlite:///x.db", state.aiosqlite_is_closed, state.aiosqlite_reusable),
]


def _engine(shim: Any, config: PoolConfig) -> Engine:
    recorder = StatsRecorder(min_size=config.min_size, max_size=config.max_size)
    return Engine(config, shim, adapter=shim.name, hooks=HookRunner(Hooks()), recorder=recorder)


@pytest.mark.parametrize(("kind", "url", "closed", "reusable"), PLAIN)
def test_engine_calls_the_plain_functions_of_an_unrouted_pool(
    kind: Any, url: str, closed: Any, reusable: Any
) -> None:
    config = PoolConfig(url=url)
    engine = _engine(kind(), config)
    assert engine._is_closed is closed
    assert engine._reusable is reusable


@pytest.mark.parametrize("kind", [AsyncmyShim, AiomysqlShim, AsyncpgShim, AiopgShim])
def test_a_routed_pool_keeps_the_shim_methods(kind: Any) -> None:
    url = "mysql://root@h1/db" if kind().backend == "mysql" else "postgresql://u@h1/db"
    config = PoolConfig(url=url, hosts=("h1", "h2"))
    shim = kind()
    assert shim.state_checks(config) is None
    engine = _engine(shim, config)
    assert engine._is_closed == shim.is_closed  # a bound method: retired() applies


class _Transport:
    def __init__(self, closing: bool) -> None:
        self.closing = closing

    def is_closing(self) -> bool:
        return self.closing


@pytest.mark.parametrize("connected", [True, False])
@pytest.mark.parametrize("transport", [None, False, True])
@pytest.mark.parametrize("status", [0, 1, 2, 3])
def test_asyncmy_answers_match_the_public_properties(
    connected: bool, transport: bool | None, status: int
) -> None:
    conn = SimpleNamespace(
        _connected=connected,
        connected=connected,
        _transport=None if transport is None else _Transport(transport),
        server_status=status,
    )
    shim = AsyncmyShim()
    closing = transport is True
    assert shim.is_closed(conn) is state.asyncmy_is_closed(conn) is (not connected or closing)
    assert state.asyncmy_reusable(conn) is (connected and not status & 1)
    assert shim.in_transaction(conn) is bool(status & 1)


def test_a_shim_whose_check_is_replaced_keeps_its_methods() -> None:
    config = PoolConfig(url="mysql://root@127.0.0.1/db")

    class Stricter(AsyncmyShim):
        def is_closed(self, conn: Any) -> bool:
            return True

    assert Stricter().state_checks(config) is None
    engine = _engine(Stricter(), config)
    assert engine._is_closed(object()) is True  # the override is what the engine asks
    patched = AsyncmyShim()
    patched.reusable = lambda conn: False  # type: ignore[method-assign]
    assert patched.state_checks(config) is None
    assert AsyncmyShim().state_checks(config) == (state.asyncmy_is_closed, state.asyncmy_reusable)
