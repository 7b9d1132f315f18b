"""The high-availability fields: every source (code, libpq and SQLAlchemy URL forms, env,
TOML), their validation, and how each adapter's translation table honours them."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from poolbridge import ConfigError, PoolConfig
from poolbridge.adapters.registry import get_adapter
from poolbridge.config.loaders import load
from poolbridge.errors import UnsupportedOptionError

HA = ("hosts", "target_session_attrs", "load_balance_hosts", "host_recheck_interval")


def test_libpq_url_hosts_become_the_hosts_field_and_the_url_names_the_first() -> None:
    c = PoolConfig(url="postgresql://u:pw@h1:5432,h2:5433,[::1]:5434/db?max_size=3")
    assert c.hosts == ("h1:5432", "h2:5433", "[::1]:5434")
    assert c.url == "postgresql://u:pw@h1:5432/db"
    assert c.max_size == 3
    assert c.host_list() == [("h1", 5432), ("h2", 5433), ("::1", 5434)]
    assert "pw" not in repr(c)


def test_sqlalchemy_repeated_host_query_key_is_allowed_for_hosts_only() -> None:
    c = PoolConfig(url="postgresql+asyncpg://u@/db?host=h1:5432&host=h2:5433&sslmode=disable")
    assert c.hosts == ("h1:5432", "h2:5433")
    assert c.database_url.host == "h1" and c.database_url.port == 5432
    assert dict(c.database_url.query) == {"sslmode": "disable"}
    with pytest.raises(ConfigError, match="'sslmode' is given 2 times"):
        PoolConfig(url="postgresql://u@h1/db?sslmode=disable&sslmode=require")
    socket = PoolConfig(url="postgresql://u@/db?host=/var/run/postgresql")
    assert socket.hosts == () and socket.host_list() == []


def test_hosts_without_a_port_take_the_url_port_and_round_trip() -> None:
    c = PoolConfig(url="postgresql://u@h0:6000/db", hosts="a, b:7000", load_balance_hosts="RANDOM")
    assert c.host_list() == [("a", 6000), ("b", 7000)]
    assert c.load_balance_hosts == "random"
    assert PoolConfig.from_dict(c.to_dict()) == c
    assert c.to_dict()["hosts"] == ["a", "b:7000"]


def test_every_bad_value_is_one_line_of_one_error() -> None:
    with pytest.raises(ConfigError) as info:
        PoolConfig(
            url="postgresql://u@h1:5432,h2:99999/db",
            target_session_attrs="master",
            load_balance_hosts="round-robin",
            host_recheck_interval=0,
        )
    lines = info.value.problems
    assert len(lines) == 4, lines
    assert any(line.startswith("hosts entry 'h2:99999' has an invalid port") for line in lines)
    assert any("target_session_attrs must be one of any, read-write" in line for line in lines)
    assert any(line.startswith("load_balance_hosts must be one of") for line in lines)
    assert any(line.startswith("host_recheck_interval must be > 0") for line in lines)
    with pytest.raises(ConfigError, match="hosts entry 'a b' is not host"):
        PoolConfig(url="postgresql://u@h/db", hosts=["a b"])
    with pytest.raises(ConfigError, match="at most 64"):
        PoolConfig(url="postgresql://u@h/db", hosts=[f"h{i}" for i in range(65)])


def test_env_and_toml_sources(tmp_path: Path) -> None:
    env = {
        "POOLBRIDGE_URL": "postgresql://u@x/db",
        "POOLBRIDGE_HOSTS": "a:1,b:2",
        "POOLBRIDGE_REPLICA__TARGET_SESSION_ATTRS": "prefer_standby",
    }
    toml = tmp_path / "poolbridge.toml"
    toml.write_text(
        'url = "postgresql://u@p1:5432,p2:5432/db"\n'
        'target_session_attrs = "read-write"\n'
        "[pools.replica]\n"
        'host_recheck_interval = "10s"\n'
    )
    primary = load(path=toml, environ={})
    assert primary.hosts == ("p1:5432", "p2:5432") and primary.target_session_attrs == "read-write"
    replica = load("replica", path=toml, environ=env)
    assert replica.hosts == ("a:1", "b:2")  # the environment beats the file
    assert replica.target_session_attrs == "prefer-standby"
    assert replica.host_recheck_interval == 10.0


@pytest.mark.parametrize("adapter", ["asyncpg", "aiopg", "aiomysql", "asyncmy"])
def test_engine_backed_adapters_emulate_every_knob(adapter: str) -> None:
    url = "mysql://u@h1,h2/db" if adapter in ("aiomysql", "asyncmy") else "postgresql://u@h1,h2/db"
    t = get_adapter(adapter).translate(PoolConfig(url=url, target_session_attrs="primary"))
    assert set(HA) <= set(t.emulated) and not set(HA) & set(t.unsupported)


def test_psycopg_passes_libpq_keys_and_refuses_the_recheck() -> None:
    config = PoolConfig(
        url="postgresql://u@h1:5432,h2/db", target_session_attrs="standby",
        load_balance_hosts="random", host_recheck_interval=None,
    )  # fmt: skip
    kwargs = get_adapter("psycopg").translate(config).native["kwargs"]
    # an entry without a port takes the URL's, which is the first host's
    assert kwargs["host"] == "h1,h2" and kwargs["port"] == "5432,5432"
    assert kwargs["target_session_attrs"] == "standby"
    assert kwargs["load_balance_hosts"] == "random"
    with_recheck = PoolConfig(url="postgresql://u@h1,h2/db", host_recheck_interval=5)
    no_ports = get_adapter("psycopg").translate(with_recheck).native["kwargs"]
    assert no_ports["port"] == ","  # empty entries: libpq's default port
    assert "host_recheck_interval" in get_adapter("psycopg").translate(with_recheck).unsupported


@pytest.mark.asyncio
@pytest.mark.parametrize("adapter", ["aiosqlite", "sqlalchemy"])
@pytest.mark.parametrize(
    "knob", [("hosts", ["a:1"]), ("target_session_attrs", "primary"),
             ("load_balance_hosts", "random"), ("host_recheck_interval", 5.0)],
)  # fmt: skip
async def test_sqlite_refuses_each_knob_by_name(
    tmp_path: Path, adapter: str, knob: tuple[str, object]
) -> None:
    from poolbridge import open_pool

    config = PoolConfig(url=f"sqlite:///{tmp_path / 'x.db'}", **{knob[0]: knob[1]})
    with pytest.raises(UnsupportedOptionError, match=knob[0]):
        async with open_pool(config, adapter=adapter):
            pass


@pytest.mark.asyncio
async def test_sqlalchemy_refuses_several_hosts_instead_of_using_the_first() -> None:
    from poolbridge import open_pool

    config = PoolConfig(url="postgresql://root@127.0.0.1:5432,127.0.0.1:5433/test")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(UnsupportedOptionError, match="hosts: SQLAlchemy"):
            async with open_pool(config, adapter="sqlalchemy"):
                pass


def test_an_entry_with_credentials_is_refused_without_echoing_them() -> None:
    with pytest.raises(ConfigError) as info:
        PoolConfig(url="postgresql://u@h/db", hosts=["app:s3cret-pw@h1:5432"])
    assert "s3cret-pw" not in str(info.value)
    assert "user and password belong in the URL" in str(info.value)
