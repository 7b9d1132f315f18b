"""Connection budget: the arithmetic, the CLI, and the warning at open against a real
server whose max_connections is small (an embedded PostgreSQL this test owns)."""

from __future__ import annotations

import json
import uuid
import warnings
from collections.abc import Iterator

import pytest

from poolbridge import ConfigError, PoolConfig, check_budget, open_pool
from poolbridge.errors import ConnectionBudgetWarning
from poolbridge.pool.budget import plan_budget
from poolbridge.testing.admin import in_ci


def test_plan_splits_what_the_server_leaves() -> None:
    plan = plan_budget(max_connections=100, reserved=3, processes=4, headroom=5)
    assert plan.available == 92
    assert plan.per_process == 23
    assert plan.per_pool == 23
    assert plan.unused == 0
    two_pools = plan_budget(max_connections=100, reserved=3, processes=4, pools_per_process=2)
    assert two_pools.per_pool == 12  # 97 // 4 = 24 per process, two pools of 12
    assert two_pools.unused == 97 - 12 * 8


def test_validate_names_the_limit_and_the_arithmetic() -> None:
    plan = plan_budget(max_connections=100, reserved=3, processes=8)
    assert plan.validate(12) == []
    problems = plan.validate(PoolConfig(url="postgresql://h/db", max_size=15))
    assert len(problems) == 1
    assert "max_size must be <= 12" in problems[0]
    assert "8 process(es) x 1 pool(s) x 15 = 120" in problems[0]


def test_impossible_budget_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="every pool needs >= 1"):
        plan_budget(max_connections=10, reserved=3, processes=8)
    with pytest.raises(ConfigError) as info:
        plan_budget(max_connections=0, reserved=-1, processes=0)
    assert len(info.value.problems) == 3


def test_cli_plans_and_validates(capsys: pytest.CaptureFixture[str]) -> None:
    from poolbridge.cli import EXTENSION_MODULES, main

    assert "poolbridge.cli.budget" in EXTENSION_MODULES  # `poolbridge budget` is registered

    assert main(["budget", "--max-connections", "100", "--processes", "8", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["per_pool"] == 12
    assert main(["budget", "--max-connections", "100", "--processes", "8", "--max-size", "15"]) == 1
    assert "max_size must be <= 12" in capsys.readouterr().out
    assert main(["budget", "--processes", "2"]) == 2


@pytest.mark.server
def test_cli_reads_the_server(pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from poolbridge.cli import main

    assert main(["budget", "--url", pg_url, "--processes", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["max_connections"] == 100  # the test server's setting
    assert out["reserved"] >= 3
    assert 1 <= out["server_in_use"] <= 100


@pytest.fixture(scope="module")
def small_server() -> Iterator[str]:
    from poolbridge.testing.servers.embedded import EmbeddedPostgres

    try:
        server = EmbeddedPostgres(settings={"max_connections": "12"})
        server.start()
    except Exception as exc:  # pragma: no cover - environment dependent
        if in_ci():  # CI=true: a server that cannot start is a failure, not a skip
            pytest.fail(f"embedded PostgreSQL did not start: {exc}")
        pytest.skip(f"embedded PostgreSQL did not start: {exc}")
    try:
        yield server.url
    finally:
        server.close()


@pytest.mark.asyncio
@pytest.mark.server
async def test_check_budget_warns_when_the_server_has_too_few_free(small_server: str) -> None:
    # 12 - 3 reserved = 9 usable; the pool may take 10
    cfg = PoolConfig(url=small_server, min_size=1, max_size=10, name=f"b{uuid.uuid4().hex[:6]}")
    async with open_pool(cfg, adapter="asyncpg") as pool:
        with pytest.warns(ConnectionBudgetWarning, match="only 8 free"):
            info = await check_budget(pool)
    assert info is not None
    assert info.max_connections == 12
    assert info.reserved == 3
    assert info.in_use == 1  # our pool's one connection


@pytest.mark.asyncio
@pytest.mark.server
async def test_check_budget_is_quiet_when_it_fits(small_server: str) -> None:
    cfg = PoolConfig(url=small_server, min_size=1, max_size=3, name=f"b{uuid.uuid4().hex[:6]}")
    async with open_pool(cfg, adapter="asyncpg") as pool:
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConnectionBudgetWarning)
            info = await check_budget(pool)
    assert info is not None and info.free >= 2
