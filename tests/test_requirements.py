"""Every knob an adapter claims (native or emulated) is proven by an open conformance row.

A knob listed native or emulated for an adapter is a promise, so a conformance requirement
open for that adapter must prove it. A knob counts as claimed unless the adapter lists it as
unsupported; a row closed for the whole backend (SQLite has no server) exempts it, a row the
adapter closes itself does not.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from poolbridge import PoolConfig
from poolbridge.adapters.registry import adapter_names, get_adapter
from poolbridge.testing.requirements import (
    BACKEND_CLOSED,
    HA_ROWS,
    KNOB_REQUIREMENTS,
    NO_REQUIREMENT,
    NO_TWIN,
    PARITY_REQUIREMENTS,
    REQUIREMENTS,
    closed_reason,
    requirement,
    selected,
)

URLS = {
    "postgresql": "postgresql://app@127.0.0.1:5432/test",
    "mysql": "mysql://app@127.0.0.1:3306/test",
    "sqlite": "sqlite:////tmp/poolbridge-knobs.db",
}
FIELDS = [f.name for f in dataclasses.fields(PoolConfig)]
HA_SET = {"hosts": ("127.0.0.1:5001", "127.0.0.1:5002"), "target_session_attrs": "read-write"}


def _columns() -> list[tuple[str, str, str]]:
    out = []
    for name in adapter_names(installed_only=True):
        for backend, drivers in get_adapter(name).drivers.items():
            out.extend((name, backend, d) for d in drivers)
    return out


def test_every_config_field_is_mapped_or_exempt() -> None:
    for name in FIELDS:
        assert name in KNOB_REQUIREMENTS or name in NO_REQUIREMENT, name
    assert not set(KNOB_REQUIREMENTS) - set(FIELDS), "a requirement names an unknown knob"
    assert not set(NO_REQUIREMENT) & set(KNOB_REQUIREMENTS)


def test_requirement_names_are_unique_and_known() -> None:
    names = [r.name for r in REQUIREMENTS]
    assert len(names) == len(set(names))
    for closed in BACKEND_CLOSED.values():
        for name in closed:
            requirement(name)
    with pytest.raises(KeyError, match="unknown requirement"):
        requirement("nosuch")


def test_suite_has_a_test_for_every_requirement() -> None:
    import ast
    from pathlib import Path

    import poolbridge.testing.suite as suite

    marked: set[str] = set()
    for path in Path(suite.__file__).parent.glob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "poolbridge_requirement"
            ):
                marked.add(ast.literal_eval(node.args[0]))
    assert marked == {r.name for r in REQUIREMENTS}


@pytest.mark.parametrize(("adapter_name", "backend", "driver"), _columns())
def test_claimed_knobs_have_open_requirements(adapter_name: str, backend: str, driver: str) -> None:
    adapter = get_adapter(adapter_name)
    # the high-availability knobs are refused only when set: set them, so that a stack
    # refusing them does not count as claiming them
    cfg = PoolConfig(url=URLS[backend], driver=driver, min_size=1, max_size=4, **HA_SET)
    translation = adapter.translate(cfg)
    claimed = [f for f in FIELDS if f not in translation.unsupported and f not in NO_REQUIREMENT]
    problems = []
    for knob in claimed:
        rows = KNOB_REQUIREMENTS[knob]
        if any(closed_reason(adapter, backend, driver, r) is None for r in rows):
            continue
        if all(r in BACKEND_CLOSED.get(backend, {}) for r in rows):
            continue  # meaningless on this backend, not a broken promise
        reasons = {r: closed_reason(adapter, backend, driver, r) for r in rows}
        problems.append(f"{knob}: claimed but every row is closed by the adapter: {reasons}")
    assert not problems, "\n".join(problems)


#: the ORM adapters whose parity rows must be open (issue acceptance): adapter -> drivers
PARITY_COLUMNS = {
    "tortoise": ("asyncpg", "psycopg", "asyncmy", "aiomysql", "aiosqlite"),
    "peewee_async": ("aiopg", "psycopg", "aiomysql", "aiosqlite"),
    "sqlalchemy": ("asyncpg", "psycopg", "aiomysql", "asyncmy", "aiosqlite"),
}
#: parity rows the built-in twins close, with the stack's reason
TWIN_CLOSED = {
    "tortoise": {"parity_sync", "parity_pool"},
    "peewee_async": set(),
    "sqlalchemy": set(),
}


def _backend_of(driver: str) -> str:
    return {"aiomysql": "mysql", "asyncmy": "mysql", "aiosqlite": "sqlite"}.get(
        driver, "postgresql"
    )


@pytest.mark.parametrize("adapter_name", sorted(PARITY_COLUMNS))
def test_orm_adapters_have_a_stock_twin_with_their_parity_rows_open(adapter_name: str) -> None:
    from poolbridge.adapters.base import StockTwin

    adapter = get_adapter(adapter_name)
    twin = adapter.stock_twin()
    assert isinstance(twin, StockTwin)
    # the twin lives in a module of its own: importing the adapter does not import it
    assert adapter.stock_twin_path is not None
    assert adapter.stock_twin_path.startswith(f"poolbridge.adapters.{adapter_name}._twin:")
    for driver in PARITY_COLUMNS[adapter_name]:
        backend = _backend_of(driver)
        for req in PARITY_REQUIREMENTS:
            reason = closed_reason(adapter, backend, driver, req.name)
            by_backend = BACKEND_CLOSED[backend].get(req.name)
            if by_backend is not None:
                assert reason == by_backend
            elif req.name in TWIN_CLOSED[adapter_name]:
                assert reason and reason != NO_TWIN, (driver, req.name)
            elif (adapter_name, driver, req.name) in {
                ("peewee_async", "psycopg", "parity_ssl"),
                ("peewee_async", "aiosqlite", "parity_pool"),
            }:
                assert reason and "peewee-async" in reason
            else:
                assert reason is None, (driver, req.name, reason)


@pytest.mark.parametrize("adapter_name", ["asyncpg", "aiopg", "aiomysql", "psycopg"])
def test_adapters_without_a_twin_close_every_parity_row(adapter_name: str) -> None:
    adapter = get_adapter(adapter_name)
    assert adapter.stock_twin() is None
    backend = "mysql" if adapter_name == "aiomysql" else "postgresql"
    driver = adapter.drivers[backend][0]
    for req in PARITY_REQUIREMENTS:
        assert closed_reason(adapter, backend, driver, req.name) == NO_TWIN
    # the knob rows are untouched by the twin
    assert closed_reason(adapter, backend, driver, "max_size") is None


def test_parity_rows_are_closed_through_pgbouncer() -> None:
    adapter = get_adapter("sqlalchemy")
    for req in PARITY_REQUIREMENTS:
        reason = closed_reason(adapter, "postgresql", "asyncpg", req.name, via="pgbouncer")
        assert reason is not None and "pgbouncer" in reason


# -- the high-availability rows ask the adapter --------------------------------------------


def _fake(refuses: bool) -> Any:
    """An asyncpg-like adapter whose translation refuses the HA knobs, or not."""
    from poolbridge.adapters.base import Translation

    base = get_adapter("asyncpg")

    class Fake(type(base)):  # type: ignore[misc]
        def translate(self, config: PoolConfig) -> Translation:
            t = base.translate(config)
            if not refuses:
                return t
            unsupported = dict(t.unsupported)
            for knob in ("hosts", "target_session_attrs"):
                if getattr(config, knob) not in ((), "any"):
                    unsupported[knob] = "this stack opens one host"
            return Translation(t.native, t.emulated, unsupported)

    return Fake()


@pytest.mark.parametrize("refuses", [True, False])
def test_ha_rows_follow_the_adapters_own_translation(refuses: bool) -> None:
    adapter = _fake(refuses)
    for row in HA_ROWS:
        reason = closed_reason(adapter, "postgresql", "asyncpg", row.name)
        if refuses:
            assert reason and "this stack opens one host" in reason, row.name
            assert "hosts and target_session_attrs" in reason
        else:
            assert reason is None, (row.name, reason)


@pytest.mark.parametrize(("adapter_name", "backend", "driver"), _columns())
def test_ha_rows_open_exactly_where_the_knobs_are_honoured(
    adapter_name: str, backend: str, driver: str
) -> None:
    # e.g. SQLAlchemy: its rows open by themselves once its table stops refusing the knobs
    adapter = get_adapter(adapter_name)
    cfg = PoolConfig(url=URLS[backend], driver=driver, host_recheck_interval=None, **HA_SET)
    refused = {"hosts", "target_session_attrs"} & set(adapter.translate(cfg).unsupported)
    for row in HA_ROWS:
        reason = closed_reason(adapter, backend, driver, row.name)
        assert (reason is not None) == bool(refused or backend == "sqlite"), (row.name, reason)
        assert closed_reason(adapter, backend, driver, row.name, via="pgbouncer") is not None


def test_deselecting_patterns() -> None:
    assert selected("failover", ())
    assert not selected("failover", ("!failover",))
    assert selected("hosts_order", ("!failover",))
    assert selected("target_standby", ("target_*", "!target_primary"))
    assert not selected("target_primary", ("target_*", "!target_primary"))
    assert not selected("connect", ("target_*",))
