"""Property tests: from_dict never fails with anything but a ConfigError naming the fields."""

from __future__ import annotations

import ssl
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from poolbridge import ConfigError, PoolConfig
from poolbridge.config.model import FIELD_NAMES, RETRY_FIELDS

UNKNOWN = ["max_sise", "timeout", "acquire_timout", "pool_size", "Max_Size", "x"]
GOOD_TEXT = [
    "5s", "500ms", "1.5s", "2m", "1h", "0", "-1", "none", "off", "", "true", "no", "3",
    "rollback", "full", "require", "verify-full", "asyncpg", "aiomysql", "read_committed",
    '{"search_path": "app"}', '{"attempts": 2}', "{}", "[1]",
]  # fmt: skip
URLS = [
    "postgresql://app:pw@127.0.0.1/db",
    "postgresql+asyncpg://h/db?sslmode=require&max_size=3",
    "mysql://root@127.0.0.1/test?charset=utf8mb4",
    "sqlite:///tmp/x.db",
    "sqlite://",
    "http://h/db",
    "postgresql://h:99999999/db",
    "postgresql://h/db?acquire_timeout=bad",
]


class Weird:
    """An object whose comparisons and conversions all raise."""

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no eq")

    def __hash__(self) -> int:
        return 1

    def __float__(self) -> float:
        raise RuntimeError("no float")

    def __repr__(self) -> str:
        return "Weird()"


scalars = st.one_of(
    st.integers(min_value=-3, max_value=40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.sampled_from(GOOD_TEXT),
    st.none(),
    st.booleans(),
    st.just(Weird()),
    st.just(ssl.create_default_context()),
)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=2),
    st.dictionaries(st.text(max_size=6) | st.sampled_from(list(RETRY_FIELDS)), scalars, max_size=3),
)
configs = st.fixed_dictionaries(
    {},
    optional={
        **{name: values for name in FIELD_NAMES},
        "url": st.sampled_from(URLS) | values,
        "retry": st.dictionaries(st.sampled_from([*RETRY_FIELDS, "atempts"]), scalars, max_size=4)
        | values,
    },
).flatmap(
    lambda d: st.dictionaries(st.sampled_from(UNKNOWN), scalars, max_size=2).map(
        lambda extra: {**d, **extra}
    )
)


def named_fields(line: str) -> str:
    """The field a ConfigError line is about (first word, or the quoted unknown key)."""
    if line.startswith("unknown field "):
        return line.split("'")[1].split(".")[0]
    return line.split(" ", 1)[0].split(".")[0]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs)
def test_from_dict_yields_config_or_config_error(data: dict[str, Any]) -> None:
    try:
        config = PoolConfig.from_dict(data)
    except ConfigError as exc:
        assert exc.problems, "a ConfigError must list its problems"
        for line in exc.problems:
            head = named_fields(line)
            cross = head == "max_size" and "min_size" in data  # the max_size >= min_size rule
            from_url = line.endswith("[url query]") and "url" in data
            assert head in data or cross or from_url or line == "url is required", (line, data)
        for key in data:
            if key not in FIELD_NAMES:
                assert any(f"'{key}'" in line for line in exc.problems), (key, exc.problems)
        if "url" not in data:
            assert "url is required" in exc.problems
        return
    assert not set(data) - set(FIELD_NAMES)
    assert isinstance(config.max_size, int) and config.max_size >= max(config.min_size, 1)
    assert isinstance(config.acquire_timeout, float) and config.acquire_timeout > 0
    assert PoolConfig.from_dict(config.to_dict()) == config
    assert config.backend in ("postgresql", "mysql", "sqlite")


@settings(max_examples=100, deadline=None)
@given(
    st.integers(min_value=0, max_value=50),
    st.integers(min_value=1, max_value=50),
    st.floats(min_value=0.001, max_value=8000),  # 8000 h: within the 365-day limit
    st.sampled_from(["ms", "s", "m", "h", ""]),
)
def test_valid_values_round_trip(min_size: int, max_size: int, seconds: float, unit: str) -> None:
    data = {
        "url": "postgresql://h/db?sslmode=disable",
        "min_size": str(min_size),
        "max_size": max_size,
        "connect_timeout": f"{seconds}{unit}",
    }
    if max_size < min_size:
        try:
            PoolConfig.from_dict(data)
        except ConfigError as exc:
            assert exc.problems == (
                f"max_size must be >= min_size (got max_size={max_size}, min_size={min_size})",
            )
            return
        raise AssertionError("max_size < min_size accepted")
    config = PoolConfig.from_dict(data)
    assert PoolConfig.from_dict(config.to_dict()) == config
    assert config.connect_timeout > 0
