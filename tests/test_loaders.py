"""Loaders: from_url, from_dict, from_env, load()/resolve() with files, named pools, ${VAR}
references and the precedence arguments > environment > file > defaults (URL options at
each level)."""

from __future__ import annotations

from pathlib import Path

import pytest

import poolbridge
from poolbridge import ConfigError, PoolConfig
from poolbridge.config.loaders import find_config_file, from_env, load, resolve

URL = "postgresql://app@127.0.0.1/app"


def write(tmp_path: Path, text: str, name: str = "poolbridge.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


# -- from_url ---------------------------------------------------------------------------------


def test_from_url_takes_pool_options_and_keeps_driver_keys() -> None:
    c = PoolConfig.from_url(
        "postgresql://app:pw@127.0.0.1/test?max_size=20&acquire_timeout=5s&sslmode=require"
        "&host=%2Fvar%2Frun%2Fpostgresql&retry_max_backoff=1s&pre_ping=true"
    )
    assert (c.max_size, c.acquire_timeout, c.pre_ping, c.retry.max_backoff) == (20, 5.0, True, 1.0)
    assert c.database_url.query == {"sslmode": "require", "host": "/var/run/postgresql"}
    assert "host=%2Fvar%2Frun%2Fpostgresql" in c.url  # driver pieces kept byte for byte
    m = PoolConfig.from_url("mysql://root@127.0.0.1/test?charset=utf8mb4&min_size=0")
    assert m.min_size == 0 and m.database_url.query == {"charset": "utf8mb4"}


def test_from_url_query_beats_fields_of_the_same_call() -> None:
    c = PoolConfig.from_url("postgresql://h/db?max_size=20", max_size=5, min_size=2)
    assert (c.max_size, c.min_size) == (20, 2)


def test_from_url_bad_query_value_is_named() -> None:
    with pytest.raises(ConfigError) as info:
        PoolConfig.from_url("postgresql://h/db?max_size=lots&reset=never")
    assert info.value.problems == (
        "max_size must be an integer (got 'lots') [url query]",
        "reset must be one of rollback, full (got 'never') [url query]",
    )


# -- from_dict --------------------------------------------------------------------------------


def test_from_dict_unknown_keys_and_nested_retry() -> None:
    c = PoolConfig.from_dict({"url": URL, "retry": {"attempts": 2}, "max_idle": "none"})
    assert c.retry.attempts == 2 and c.max_idle is None
    with pytest.raises(ConfigError) as info:
        PoolConfig.from_dict(
            {"url": URL, "max_sise": 3, "retry": {"atempts": 1}, 7: 1}, source="app.json"
        )
    assert set(info.value.problems) == {
        "unknown field 7",
        "unknown field 'max_sise' (did you mean 'max_size'?)",
        "unknown field 'retry.atempts' (did you mean 'retry.attempts'?)",
    }
    assert "in app.json" in str(info.value)
    with pytest.raises(ConfigError, match="configuration must be a mapping"):
        PoolConfig.from_dict(["url"])  # type: ignore[arg-type]


# -- from_env ---------------------------------------------------------------------------------


def test_from_env_generic_and_pool_specific() -> None:
    env = {
        "POOLBRIDGE_URL": "postgresql://h/db?max_size=8",
        "POOLBRIDGE_MIN_SIZE": "2",
        "POOLBRIDGE_MAX_LIFETIME": "none",
        "POOLBRIDGE_RETRY": '{"attempts": 4, "jitter": 0.2}',
        "POOLBRIDGE_RETRY_ATTEMPTS": "6",
        "POOLBRIDGE_NAME": "main",
        "POOLBRIDGE_REPLICA__URL": "postgresql://replica/db",
        "POOLBRIDGE_REPLICA__MIN_SIZE": "0",
        "POOLBRIDGE_OTHER__MIN_SIZE": "9",
        "POOLBRIDGE_TEST_PG_URL": "ignored",  # not a field: ignored
        "POOLBRIDGE_CONFIG": "ignored.toml",
        "UNRELATED": "x",
    }
    d = PoolConfig.from_env(environ=env)
    assert (d.url, d.max_size, d.min_size, d.max_lifetime, d.name) == (
        "postgresql://h/db", 8, 2, None, "main",
    )  # fmt: skip
    assert (d.retry.attempts, d.retry.jitter) == (6, 0.2)  # RETRY_ATTEMPTS beats RETRY
    r = from_env("replica", environ=env)
    assert (r.url, r.min_size, r.name) == ("postgresql://replica/db", 0, "replica")
    assert r.max_size == 8  # options of the shared URL are shared fields, inherited
    assert r.retry.attempts == 6  # generic variables are inherited


def test_from_env_errors_name_the_variable() -> None:
    with pytest.raises(ConfigError) as info:
        from_env(environ={"POOLBRIDGE_URL": URL, "POOLBRIDGE_MAX_SIZE": "0"})
    assert info.value.problems == ("max_size must be >= 1 (got '0') [env POOLBRIDGE_MAX_SIZE]",)
    with pytest.raises(ConfigError, match="url is required"):
        from_env(environ={})


# -- files ------------------------------------------------------------------------------------

TOML = """
url = "postgresql://app:${DB_PW}@127.0.0.1/app?max_size=20&sslmode=require"
min_size = 2
acquire_timeout = "10s"
session = { search_path = "app" }
name = "main"

[retry]
attempts = 4
max_backoff = "3s"

[pools.replica]
url = "postgresql://app@replica/app"
max_size = 3
acquire_timeout = "5s"

[pools.replica.retry]
attempts = 2
"""


def test_load_named_pools_inherit_the_top_level(tmp_path: Path) -> None:
    write(tmp_path, TOML)
    env = {"DB_PW": "s3cret"}
    d = load(cwd=tmp_path, environ=env)
    assert d.url == "postgresql://app:s3cret@127.0.0.1/app?sslmode=require"
    assert (d.max_size, d.min_size, d.acquire_timeout, d.name) == (20, 2, 10.0, "main")
    assert d.session == {"search_path": "app"} and d.retry.attempts == 4
    r = load("replica", cwd=tmp_path, environ=env)
    assert (r.url, r.max_size, r.min_size, r.acquire_timeout) == (
        "postgresql://app@replica/app", 3, 2, 5.0,
    )  # fmt: skip
    assert (r.retry.attempts, r.retry.max_backoff) == (2, 3.0)  # retry merges per key
    assert r.name == "replica"  # the top-level name is the default pool's only
    assert r.session == {"search_path": "app"}


def test_pyproject_table_explicit_path_and_config_variable(tmp_path: Path) -> None:
    write(tmp_path, '[project]\nname = "x"\n[tool.poolbridge]\nurl = "sqlite://"\nmax_size = 2\n',
          "pyproject.toml")  # fmt: skip
    assert load(cwd=tmp_path, environ={}).max_size == 2
    assert poolbridge.load(cwd=tmp_path, environ={}).max_size == 2
    other = write(tmp_path, 'url = "sqlite://"\nmax_size = 3\n', "other.toml")
    assert load(path=other, environ={}).max_size == 3
    assert load(cwd=tmp_path, environ={"POOLBRIDGE_CONFIG": "other.toml"}).max_size == 3
    write(tmp_path, 'url = "sqlite://"\nmax_size = 4\n')  # poolbridge.toml beats pyproject
    assert load(cwd=tmp_path, environ={}).max_size == 4


def test_no_file_is_fine_but_a_named_missing_file_is_not(tmp_path: Path) -> None:
    assert find_config_file(cwd=tmp_path, environ={}) is None
    write(tmp_path, '[project]\nname = "x"\n', "pyproject.toml")
    assert find_config_file(cwd=tmp_path, environ={}) is None
    assert load(cwd=tmp_path, environ={"POOLBRIDGE_URL": URL}).url == URL
    with pytest.raises(ConfigError, match="not found"):
        load(path=tmp_path / "nope.toml", environ={})
    with pytest.raises(ConfigError, match=r"has no \[tool.poolbridge\] table"):
        load(path=tmp_path / "pyproject.toml", environ={})
    bad = write(tmp_path, "url = [", "bad.toml")
    with pytest.raises(ConfigError, match="is not readable TOML"):
        load(path=bad, environ={})


def test_unknown_keys_in_toml(tmp_path: Path) -> None:
    write(tmp_path, TOML.replace("min_size = 2", "min_sise = 2") + "\n[pools.replica.extra]\n")
    with pytest.raises(ConfigError) as info:
        load("replica", cwd=tmp_path, environ={"DB_PW": "x"})
    problems = info.value.problems
    assert any(
        p.startswith("unknown field 'min_sise' (did you mean 'min_size'?)") for p in problems
    )
    assert any(p.startswith("unknown field 'extra'") for p in problems)
    write(tmp_path, 'url = "sqlite://"\n[retry]\nattempt = 1\n')
    with pytest.raises(ConfigError, match=r"unknown field 'retry.attempt' \(did you mean"):
        load(cwd=tmp_path, environ={})


def test_undefined_pool_suggests_a_close_name(tmp_path: Path) -> None:
    write(tmp_path, TOML)
    with pytest.raises(ConfigError) as info:
        load("replca", cwd=tmp_path, environ={"DB_PW": "x"})
    assert "pool 'replca' is not defined" in str(info.value)
    assert "did you mean 'replica'?" in str(info.value)
    # a pool known only from its environment variables is fine
    env = {"DB_PW": "x", "POOLBRIDGE_ANALYTICS__URL": "sqlite://"}
    assert load("analytics", cwd=tmp_path, environ=env).url == "sqlite://"


def test_var_references(tmp_path: Path) -> None:
    write(tmp_path, 'url = "postgresql://u:${PW}@${HOST:-localhost}/db"\nname = "a$${LITERAL}b"\n')
    c = load(cwd=tmp_path, environ={"PW": "p@ss"})
    assert c.url == "postgresql://u:p@ss@localhost/db" and c.name == "a${LITERAL}b"
    assert load(cwd=tmp_path, environ={"PW": "x", "HOST": "db"}).database_url.host == "db"
    with pytest.raises(ConfigError) as info:
        load(cwd=tmp_path, environ={})
    assert info.value.problems == ("url references ${PW}, which is not set in the environment",)


# -- precedence -------------------------------------------------------------------------------


def test_precedence_arguments_env_file_defaults(tmp_path: Path) -> None:
    write(tmp_path, 'url = "postgresql://file/db"\nmin_size = 2\nmax_size = 6\nmax_idle = "1m"\n')
    env = {"POOLBRIDGE_MAX_SIZE": "7", "POOLBRIDGE_MAX_IDLE": "2m"}
    got = resolve(cwd=tmp_path, environ=env, overrides={"max_idle": "3m"})
    c = got.config
    assert (c.url, c.min_size, c.max_size, c.max_idle, c.connect_timeout) == (
        "postgresql://file/db", 2, 7, 180.0, 10.0,
    )  # fmt: skip
    kinds = {k: got.sources[k].kind for k in ("url", "min_size", "max_size", "max_idle")}
    assert kinds == {"url": "file", "min_size": "file", "max_size": "env", "max_idle": "argument"}
    assert got.sources["connect_timeout"].kind == "default"
    assert str(got.sources["max_size"]) == "env POOLBRIDGE_MAX_SIZE"


def test_url_options_count_at_their_level(tmp_path: Path) -> None:
    write(tmp_path, 'url = "postgresql://file/db?max_size=20&min_size=3"\nmax_size = 6\n')
    # file level: the URL option beats the file's own max_size
    got = resolve(cwd=tmp_path, environ={})
    assert got.config.max_size == 20 and got.sources["max_size"].kind == "url"
    # ... but an environment value beats the file's URL option
    got = resolve(cwd=tmp_path, environ={"POOLBRIDGE_MAX_SIZE": "7"})
    assert got.config.max_size == 7 and got.config.min_size == 3
    # env URL option beats env fields, loses to explicit arguments
    env = {"POOLBRIDGE_URL": "postgresql://env/db?max_size=9", "POOLBRIDGE_MAX_SIZE": "7"}
    got = resolve(cwd=tmp_path, environ=env)
    assert (got.config.url, got.config.max_size) == ("postgresql://env/db", 9)
    assert str(got.sources["max_size"]) == "url query of POOLBRIDGE_URL"
    assert resolve(cwd=tmp_path, environ=env, overrides={"max_size": 4}).config.max_size == 4
    # argument URL option beats the other arguments
    got = resolve(
        cwd=tmp_path,
        environ=env,
        overrides={"url": "postgresql://arg/db?max_size=11", "max_size": 4},
    )
    assert (got.config.url, got.config.max_size) == ("postgresql://arg/db", 11)
    assert got.config.min_size == 3  # the file URL's min_size still counts at the file level


def test_pool_specific_env_beats_generic_env_and_the_file(tmp_path: Path) -> None:
    write(tmp_path, TOML)
    env = {"DB_PW": "x", "POOLBRIDGE_MAX_SIZE": "7", "POOLBRIDGE_REPLICA__MAX_SIZE": "4"}
    assert load("replica", cwd=tmp_path, environ=env).max_size == 4
    assert load(cwd=tmp_path, environ=env).max_size == 7
    assert load("replica", cwd=tmp_path, environ=env, max_size=2).max_size == 2


def test_errors_say_where_the_bad_value_came_from(tmp_path: Path) -> None:
    write(tmp_path, 'url = "postgresql://h/db"\nmax_size = 0\n')
    with pytest.raises(ConfigError) as info:
        load(cwd=tmp_path, environ={"POOLBRIDGE_ACQUIRE_TIMEOUT": "-1"}, max_sise=2)
    problems = info.value.problems
    assert "unknown field 'max_sise' (did you mean 'max_size'?) in argument" in problems
    assert f"max_size must be >= 1 (got 0) [file {tmp_path / 'poolbridge.toml'}]" in problems
    assert "acquire_timeout must be >= 0 (got '-1') [env POOLBRIDGE_ACQUIRE_TIMEOUT]" in problems
    assert info.value.source == str(tmp_path / "poolbridge.toml")
