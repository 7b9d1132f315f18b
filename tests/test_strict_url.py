"""Bad input is refused at config time: strict URL rules, bounded ASCII numbers, no control
characters (docs/errors.md, "Strict URL rules"; docs/configuration.md, "Limits")."""

from __future__ import annotations

from pathlib import Path

import pytest

import poolbridge
from poolbridge import ConfigError, PoolConfig

PG = "postgresql://app@127.0.0.1/db"


def problems(**kwargs: object) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as info:
        PoolConfig(**kwargs)  # type: ignore[arg-type]
    return info.value.problems


# -- typos of pool options in the URL query (finding 5) --------------------------------------


@pytest.mark.parametrize(
    ("key", "meant"),
    [
        ("max_sise", "max_size"),
        ("min_siz", "min_size"),
        ("retry_attemps", "retry_attempts"),
        ("acquire_timout", "acquire_timeout"),
        ("MAX_SIZE", "max_size"),
        ("leak_timeuot", "leak_timeout"),
    ],
)
def test_near_miss_of_a_pool_option_is_a_config_error(key: str, meant: str) -> None:
    (line,) = problems(url=f"{PG}?{key}=5")
    assert line.startswith(f"url query key {key!r} is neither a pool option")
    assert f"(did you mean {meant!r}?)" in line


@pytest.mark.parametrize(
    "url",
    [
        f"{PG}?lock_timeout=5s",  # a server setting asyncpg passes on: 2 edits from leak_timeout
        f"{PG}?sslmode=require&application_name=x&options=-c%20a%3Db",
        "mysql://root@127.0.0.1/test?read_timeout=5&charset=utf8mb4",
        "sqlite:///tmp/x.db?uri=true",
        f"{PG}?search_path=app",  # far from every pool option: the driver judges it
    ],
)
def test_driver_options_and_far_keys_pass(url: str) -> None:
    PoolConfig(url=url)


# -- silently accepted input (finding 6) ------------------------------------------------------


def test_duplicate_query_keys() -> None:
    (line,) = problems(url=f"{PG}?max_size=1&max_size=50")
    assert "url query key 'max_size' is given 2 times: give it once" in line
    (line,) = problems(url=f"{PG}?sslmode=disable&sslmode=require")
    assert "url query key 'sslmode' is given 2 times" in line
    with pytest.raises(ConfigError, match="given 2 times"):
        PoolConfig.from_env(environ={"POOLBRIDGE_URL": f"{PG}?max_size=1&max_size=50"})


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"max_size": 10**30}, "max_size must be <= 100000"),
        ({"max_size": "100001"}, "max_size must be <= 100000"),
        ({"max_waiting": 10**6}, "max_waiting must be <= 100000"),
        ({"retry": {"attempts": 10**9}}, "retry.attempts must be <= 100000"),
        ({"max_size": "\u0661\u0662"}, "max_size must be an integer"),
        ({"max_size": "1" * 5000}, "max_size is too large"),
        ({"acquire_timeout": "\u0661s"}, "acquire_timeout must be a number of seconds"),
        ({"acquire_timeout": float("nan")}, "acquire_timeout must be a finite number"),
        ({"max_lifetime": float("inf")}, "max_lifetime must be a finite number"),
        ({"max_lifetime": "8761h"}, "max_lifetime must be <= 31536000 seconds"),
        ({"retry": {"max_backoff": 10**8}}, "retry.max_backoff must be <= 31536000"),
        ({"retry": {"jitter": float("nan")}}, "retry.jitter must be between 0 and 1"),
        ({"session": {"work_mem": float("nan")}}, "session values must be finite numbers"),
    ],
)
def test_numbers_are_ascii_finite_and_bounded(kwargs: dict[str, object], expected: str) -> None:
    (line,) = problems(url=PG, **kwargs)
    assert line.startswith(expected), line


def test_limits_themselves_are_accepted() -> None:
    c = PoolConfig(url=PG, min_size=100_000, max_size=100_000, max_lifetime="8760h")
    assert c.max_size == 100_000 and c.max_lifetime == 365 * 24 * 3600.0
    assert PoolConfig(url=f"{PG}?max_size=12").max_size == 12


def test_non_ascii_digits_in_the_url_query() -> None:
    (line,) = problems(url=f"{PG}?max_size=\u0661\u0662")
    assert line.startswith("max_size must be an integer") and line.endswith("[url query]")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql:///db", "url has no host"),
        ("postgresql://app@/db", "url has no host"),
        ("mysql://root@/test", "url has no host"),
        ("postgresql://app@127.0.0.1:0/db", "url has an invalid port"),
        ("postgresql://app@127.0.0.1:99999/db", "url has an invalid port"),
        ("postgresql://app@127.0.0.1:\uff15\uff14\uff13\uff12/db", "url has an invalid port"),
        ("postgresql://%ZZ%00@127.0.0.1/db", "url has a malformed percent-escape in the user"),
        ("postgresql://app:%00x@127.0.0.1/db", "url has a control character (such as %00)"),
        ("postgresql://app:%FF@127.0.0.1/db", "url has a password that is not UTF-8"),
        ("postgresql://app@127.0.0.1/db\n", "url contains a control character"),
        ("postgresql://app@127.0.0.1/d\x00b", "url contains a control character"),
        ("postgresql://app@127.0.0.1/db#x", "url has a '#' fragment"),
        ("postgresql://app@127.0.0.1/db?application_name=a@b", "url has an '@' after the host"),
        ("postgresql://app@127.0.0.1/db?sslmode", "url has a query piece without '='"),
        (f"{PG}?ssl%00mode=x", "url has a query key that is not an option name"),
        (f"{PG}?sslmode=%00", "url query value of 'sslmode' contains a control"),
    ],
)  # fmt: skip
def test_url_rules(url: str, expected: str) -> None:
    lines = problems(url=url)
    assert any(line.startswith(expected) for line in lines), lines


@pytest.mark.parametrize(
    "url",
    [
        "postgresql:///db?host=/var/run/postgresql",
        "postgresql://%2Fvar%2Frun%2Fpostgresql/db",
        "mysql:///test?unix_socket=/run/mysqld/mysqld.sock",
        "postgresql://app@[::1]:5432/db",
        "postgresql://app:p%40ss%2Fw%3F%23@127.0.0.1/db?application_name=a%40b",
        "sqlite://",
        "sqlite:///tmp/a@b.db",
    ],
)
def test_socket_forms_and_encoded_urls_are_accepted(url: str) -> None:
    PoolConfig(url=url)


def test_control_characters_refused_in_every_string_field() -> None:
    lines = problems(
        url=PG,
        name="app\x00",
        password="s3cret\n",
        reset="rollback\n",
        session={"search_path": "app\x00"},
        driver_options={"server_settings": {"x": "a\x00"}},
    )
    text = "\n".join(lines)
    assert "name must not contain control characters (U+0000)" in text
    assert "password must not contain control characters: a trailing newline" in text
    assert "(got str)" in text and "s3cret" not in text  # the password is never shown
    assert "reset must not contain control characters (U+000A)" in text
    assert "session values must not contain control characters" in text
    assert "driver_options must not contain NUL characters" in text
    assert "driver_options.server_settings.x" in text
    assert len(lines) == 5
    # multi-line JSON in a text source is fine: its decoded contents are checked
    c = PoolConfig.from_env(environ={"POOLBRIDGE_URL": PG, "POOLBRIDGE_SESSION": '{\n"a": "b"\n}'})
    assert c.session == {"a": "b"}


def test_nul_in_toml_and_env(tmp_path: Path) -> None:
    path = tmp_path / "poolbridge.toml"
    path.write_text(f'url = "{PG}"\nname = "app\\u0000"\n')
    with pytest.raises(ConfigError, match=r"name must not contain control characters"):
        poolbridge.load(path=path, environ={})
    with pytest.raises(ConfigError, match=r"max_size must not contain control characters"):
        PoolConfig.from_env(environ={"POOLBRIDGE_URL": PG, "POOLBRIDGE_MAX_SIZE": "5\n"})


def test_all_problems_of_one_config_come_together() -> None:
    lines = problems(
        url=f"{PG}?max_sise=5&max_size=1&max_size=2&sslmode=a&sslmode=b",
        min_size=10**7,
        name="x\n",
    )
    text = "\n".join(lines)
    for part in (
        "'max_size' is given 2 times",
        "'sslmode' is given 2 times",
        "did you mean 'max_size'",
        "min_size must be <= 100000",
        "name must not",
    ):
        assert part in text, text
