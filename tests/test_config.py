"""PoolConfig: validation rules (alone and combined), normalisation, equality, derived views."""

from __future__ import annotations

import dataclasses
import ssl

import pytest

from poolbridge import ConfigError, PoolConfig, RetryPolicy
from poolbridge.config.durations import format_duration, parse_bool, parse_duration, parse_int

URL = "postgresql://app@127.0.0.1:5432/app"


def problems_of(**kwargs: object) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as info:
        PoolConfig(**kwargs)  # type: ignore[arg-type]
    return info.value.problems


def test_defaults_match_the_design_table() -> None:
    c = PoolConfig(url=URL)
    assert (c.min_size, c.max_size) == (1, 10)
    assert (c.acquire_timeout, c.connect_timeout) == (30.0, 10.0)
    assert c.statement_timeout is None and c.leak_timeout is None
    assert (c.max_lifetime, c.max_idle) == (3600.0, 600.0)
    assert c.pre_ping is None and c.statement_cache is True  # None: as the stack does stock
    assert (c.max_waiting, c.reset, c.isolation_level, c.ssl) == (0, "rollback", None, None)
    assert c.session == {} and c.driver_options == {}
    assert c.retry == RetryPolicy(attempts=3, initial_backoff=0.1, max_backoff=2.0, jitter=0.1)
    assert c.name == "default" and c.password is None and c.driver is None


def test_acceptance_one_error_names_every_problem() -> None:
    with pytest.raises(ConfigError) as info:
        PoolConfig(url="postgresql://h/db", min_size=5, max_size=2, acquire_timeout=-1)
    problems = info.value.problems
    assert "max_size must be >= min_size (got max_size=2, min_size=5)" in problems
    assert "acquire_timeout must be >= 0 (got -1)" in problems
    assert len(problems) == 2
    text = str(info.value)
    assert "2 problems" in text and "min_size=5" in text and "acquire_timeout" in text
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("url", "http://h/db", "url must start with a known scheme"),
        ("url", "", "url must be a non-empty database URL string"),
        ("url", 42, "url must be a non-empty database URL string"),
        ("url", "postgresql+pymysql://h/db", "url names driver 'pymysql', unknown for postgresql"),
        ("url", "postgresql://h:notaport/db", "url has an invalid port"),
        ("driver", "odbc", "driver must be one of"),
        (
            "driver",
            "aiomysql",
            "driver must be one of asyncpg, psycopg, aiopg for a postgresql URL",
        ),
        ("min_size", -1, "min_size must be >= 0 (got -1)"),
        ("min_size", 1.5, "min_size must be an integer (got 1.5)"),
        ("min_size", True, "min_size must be an integer (got True)"),
        ("max_size", 0, "max_size must be >= 1 (got 0)"),
        ("acquire_timeout", -1, "acquire_timeout must be >= 0 (got -1)"),
        ("acquire_timeout", "soon", "acquire_timeout must be a number of seconds"),
        ("acquire_timeout", float("inf"), "acquire_timeout must be a finite number"),
        ("acquire_timeout", None, "acquire_timeout must be a number of seconds"),
        ("connect_timeout", "-1s", "connect_timeout must be > 0 (got '-1s')"),
        ("statement_timeout", 0, "statement_timeout must be > 0 or None (got 0)"),
        ("max_lifetime", -5, "max_lifetime must be > 0 or None (got -5)"),
        ("max_idle", "0ms", "max_idle must be > 0 or None (got '0ms')"),
        ("leak_timeout", "x", "leak_timeout must be a number of seconds"),
        ("pre_ping", "maybe", "pre_ping must be true or false (got 'maybe')"),
        ("statement_cache", 1, "statement_cache must be true or false (got 1)"),
        ("max_waiting", -1, "max_waiting must be >= 0 (got -1)"),
        ("reset", "discard", "reset must be one of rollback, full (got 'discard')"),
        ("isolation_level", "chaos", "isolation_level must be one of read_committed"),
        ("session", ["a"], "session must be a mapping"),
        ("session", {"search path": "x"}, "session keys must be setting names"),
        ("session", {"a": None}, "session values must be strings"),
        ("ssl", "sometimes", "ssl must be None, one of disable, require, verify-ca, verify-full"),
        ("ssl", 5, "ssl must be None, one of"),
        ("password", 1234, "password must be a string or a (sync or async) callable"),
        ("driver_options", {1: 2}, "driver_options keys must be strings"),
        ("name", "", "name must be a non-empty string (got '')"),
        ("name", None, "name must be a non-empty string (got None)"),
        ("retry", {"attempts": 0}, "retry.attempts must be >= 1 (got 0)"),
        ("retry", {"initial_backoff": -1}, "retry.initial_backoff must be >= 0 (got -1)"),
        ("retry", {"jitter": 1.5}, "retry.jitter must be between 0 and 1 (got 1.5)"),
        ("retry", {"jitter": float("nan")}, "retry.jitter must be between 0 and 1"),
        ("retry", {"initial_backoff": 3, "max_backoff": 1}, "retry.max_backoff must be >= retry."),
        ("retry", 5, "retry must be a mapping"),
        ("retry", None, "retry must be a mapping"),
    ],
)
def test_each_rule_alone(field: str, value: object, expected: str) -> None:
    kwargs: dict[str, object] = {"url": URL, field: value}
    problems = problems_of(**kwargs)
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems[0]
    assert problems[0].split(" ")[0].split(".")[0] == field or problems[0].startswith(field)


def test_all_rules_combined_in_one_error() -> None:
    problems = problems_of(
        url="mysql://h/db",
        driver="asyncpg",
        min_size=-1,
        max_size=0,
        acquire_timeout="never",
        max_waiting=-3,
        reset="x",
        ssl="maybe",
        name="",
        retry={"attempts": 0, "jitter": 2},
        max_sise=4,
    )
    heads = {p.split(" ")[0] for p in problems}
    assert {
        "driver",
        "min_size",
        "max_size",
        "acquire_timeout",
        "max_waiting",
        "reset",
        "ssl",
    } <= heads
    assert {"name", "retry.attempts", "retry.jitter", "unknown"} <= heads
    assert "unknown field 'max_sise' (did you mean 'max_size'?)" in problems


def test_unknown_keyword_is_config_error_with_suggestion() -> None:
    problems = problems_of(url=URL, max_sise=3, acquire_timout=1, zzz=1)
    assert "unknown field 'max_sise' (did you mean 'max_size'?)" in problems
    assert "unknown field 'acquire_timout' (did you mean 'acquire_timeout'?)" in problems
    assert "unknown field 'zzz'" in problems  # nothing close: no suggestion
    problems = problems_of(url=URL, retry={"attemps": 2})
    assert problems == ("unknown field 'retry.attemps' (did you mean 'retry.attempts'?)",)


def test_missing_url_and_positional_arguments() -> None:
    assert problems_of() == ("url is required",)
    assert problems_of(max_size=0) == ("url is required",)
    with pytest.raises(TypeError):
        PoolConfig(URL)  # type: ignore[misc]


def test_text_values_are_normalised_and_compare_equal() -> None:
    a = PoolConfig(
        url=URL,
        min_size="2",  # type: ignore[arg-type]
        acquire_timeout="1.5s",
        connect_timeout="500ms",
        max_lifetime="1h",
        max_idle="5m",
        statement_timeout="none",
        pre_ping="yes",  # type: ignore[arg-type]
        isolation_level="Repeatable Read",  # type: ignore[arg-type]
        ssl="VERIFY_FULL",
        reset="FULL",  # type: ignore[arg-type]
        retry={"attempts": "4", "initial_backoff": "50ms"},  # type: ignore[arg-type]
        session={"statement_timeout": 5},
    )
    b = PoolConfig(
        url=URL,
        min_size=2,
        acquire_timeout=1.5,
        connect_timeout=0.5,
        max_lifetime=3600,
        max_idle=300.0,
        pre_ping=True,
        isolation_level="repeatable_read",
        ssl="verify-full",
        reset="full",
        retry=RetryPolicy(attempts=4, initial_backoff=0.05),
        session={"statement_timeout": "5"},
    )
    assert a == b
    assert isinstance(a.acquire_timeout, float) and isinstance(a.max_lifetime, float)
    assert a != dataclasses.replace(b, max_size=11)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("30s", 30.0), ("1.5s", 1.5), ("5m", 300.0), ("1h", 3600.0),
     ("2", 2.0), (" 10 S ", 10.0), (".5s", 0.5), (7, 7.0), (0.25, 0.25)],
)  # fmt: skip
def test_duration_parsing(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "1d", "s", "1 h 2", "1e3", True, None, [1], "nan", "inf"])
def test_duration_parsing_refuses(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_scalar_parsers_and_format() -> None:
    assert parse_int(" 12 ") == 12 and parse_int(-3) == -3
    assert [parse_bool(v) for v in ("on", "OFF", "1", "no", True)] == [
        True,
        False,
        True,
        False,
        True,
    ]
    for bad in ("1.0", 2.0, True):
        with pytest.raises(ValueError):
            parse_int(bad)
    assert format_duration(0.5) == "500ms" and format_duration(30.0) == "30s"


def test_optional_durations_accept_none_words() -> None:
    c = PoolConfig(url=URL, max_lifetime="off", max_idle="", leak_timeout="null")
    assert c.max_lifetime is None and c.max_idle is None and c.leak_timeout is None
    assert problems_of(url=URL, acquire_timeout="none")[0].startswith("acquire_timeout must be")


def test_url_pool_options_are_taken_and_beat_the_other_arguments() -> None:
    c = PoolConfig(
        url="postgresql://app@h/db?max_size=20&sslmode=require&acquire_timeout=5s&retry_attempts=7",
        max_size=5,
    )
    assert c.max_size == 20 and c.acquire_timeout == 5.0 and c.retry.attempts == 7
    assert c.url == "postgresql://app@h/db?sslmode=require"
    assert c.database_url.query == {"sslmode": "require"}
    assert PoolConfig(url="postgresql://app@h/db?max_size=20") == PoolConfig(
        url="postgresql://app@h/db", max_size=20
    )


def test_driver_from_field_or_url_must_match_backend() -> None:
    assert PoolConfig(url="postgresql+asyncpg://h/db").database_url.driver == "asyncpg"
    assert PoolConfig(url="mariadb://h/db", driver="asyncmy").backend == "mysql"
    assert PoolConfig(url="sqlite:///x.db", driver="AIOSQLITE").driver == "aiosqlite"
    assert problems_of(url="sqlite:///x.db", driver="asyncpg")[0].startswith(
        "driver must be one of aiosqlite for a sqlite URL"
    )


def test_database_url_views() -> None:
    u = PoolConfig(
        url="postgres://us%40er:p%2Fw@db.local:6432/my%20db?host=/var/run/pg"
    ).database_url
    assert (u.backend, u.username, u.password, u.host, u.port) == (
        "postgresql", "us@er", "p/w", "db.local", 6432,
    )  # fmt: skip
    assert u.database == "my db" and u.query == {"host": "/var/run/pg"}
    assert PoolConfig(url="sqlite://").database_url.database == ":memory:"
    assert PoolConfig(url="sqlite:///:memory:").database_url.database == ":memory:"
    assert PoolConfig(url="sqlite:////tmp/a.db").database_url.database == "/tmp/a.db"
    assert PoolConfig(url="sqlite+aiosqlite:///rel.db").database_url.database == "rel.db"
    assert PoolConfig(url="mysql://root@127.0.0.1/test").backend == "mysql"


def test_ssl_context_session_driver_options_and_password_kinds() -> None:
    ctx = ssl.create_default_context()
    marker = object()
    c = PoolConfig(
        url=URL, ssl=ctx, driver_options={"server_settings": marker}, password=lambda: "x"
    )
    assert c.ssl is ctx and c.driver_options["server_settings"] is marker  # not deep-copied
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.max_size = 3  # type: ignore[misc]


@pytest.mark.asyncio
async def test_get_password_sources() -> None:
    assert await PoolConfig(url="postgresql://u:fromurl@h/db").get_password() == "fromurl"
    assert await PoolConfig(url="postgresql://u:x@h/db", password="field").get_password() == "field"
    assert await PoolConfig(url=URL).get_password() is None

    async def provider() -> str:
        return "async-token"

    assert await PoolConfig(url=URL, password=provider).get_password() == "async-token"
    assert await PoolConfig(url=URL, password=lambda: "sync-token").get_password() == "sync-token"


def test_to_dict_round_trips_and_replace_revalidates() -> None:
    ctx = ssl.create_default_context()
    c = PoolConfig(
        url="mysql+aiomysql://root:pw@127.0.0.1/test?charset=utf8mb4",
        max_size=4,
        session={"time_zone": "+00:00"},
        ssl=ctx,
        password=lambda: "t",
        retry=RetryPolicy(attempts=5),
        leak_timeout=2,
        name="reports",
    )
    assert PoolConfig.from_dict(c.to_dict()) == c
    assert PoolConfig(**c.to_dict()) == c
    with pytest.raises(ConfigError):
        dataclasses.replace(c, max_size=0)


def test_retry_policy_alone() -> None:
    assert RetryPolicy(attempts="2", max_backoff="1s").max_backoff == 1.0  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as info:
        RetryPolicy(attempts=0, jiter=0.5)  # type: ignore[call-arg]
    assert set(info.value.problems) == {
        "unknown field 'retry.jiter' (did you mean 'retry.jitter'?)",
        "retry.attempts must be >= 1 (got 0)",
    }
    assert RetryPolicy.from_value('{"attempts": 9}').attempts == 9


def test_hash_pickle_and_copy_agree_with_equality() -> None:
    import copy
    import pickle

    c = PoolConfig(url="postgresql://u:p@h/db?sslmode=require", session={"a": "b"})
    twin = PoolConfig(**c.to_dict())
    assert hash(c) == hash(twin) and {c: 1}[twin] == 1
    assert pickle.loads(pickle.dumps(c)) == c and copy.deepcopy(c) == c


def test_schema_covers_every_field_and_the_example_file() -> None:
    import re
    import tomllib
    from pathlib import Path

    from poolbridge.config.model import FIELD_NAMES, RETRY_FIELDS
    from poolbridge.config.schema import json_schema

    schema = json_schema()
    props = schema["properties"]
    assert set(props) == {*FIELD_NAMES, "pools"}
    assert set(props["retry"]["properties"]) == set(RETRY_FIELDS)
    example = Path(__file__).resolve().parent.parent / "examples" / "poolbridge.toml"
    doc = tomllib.loads(example.read_text())
    tables = [doc, *doc["pools"].values()]
    for table in tables:
        for key, value in table.items():
            if key == "pools":
                continue
            assert key in props, key
            spec = props[key]
            if "enum" in spec:
                assert value in spec["enum"], (key, value)
            if "anyOf" in spec and isinstance(value, str):
                assert any(
                    re.match(o.get("pattern", "^$"), value) or value in o.get("enum", [])
                    for o in spec["anyOf"]
                    if o["type"] == "string"
                ), (key, value)


def test_ssl_true_is_kept_and_false_means_disable() -> None:
    # True keeps each stack's own meaning (asyncpg and Tortoise: verify-full); text spellings
    # from TOML, the environment or a URL query agree with the Python values
    assert PoolConfig(url=URL, ssl=True).ssl is True
    assert PoolConfig(url=URL + "?ssl=true").ssl is True
    assert PoolConfig(url=URL, ssl=False).ssl == "disable"
    assert PoolConfig(url=URL, ssl="no").ssl == "disable"


def test_pre_ping_unset_is_none_and_explicit_values_win() -> None:
    assert PoolConfig(url=URL).pre_ping is None
    assert PoolConfig(url=URL, pre_ping="off").pre_ping is False
    assert PoolConfig(url=URL + "?pre_ping=true").pre_ping is True
    assert PoolConfig(url=URL, pre_ping="none").pre_ping is None
