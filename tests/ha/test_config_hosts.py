"""The high-availability fields: every source (code, libpq and SQLAlchemy URL forms, env,
TOML), their validation, and how each adapter's translation table honours them."""

from __future__ import annotations

from pathlib import Path

import pytest

from poolbridge import ConfigError, PoolConfig
from poolbridge.adapters.registry import get_adapter
from poolbridge.config.loaders import load
from poolbridge.errors import UnsupportedOptionError, UnsupportedOptionWarning

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


@pytest.mark.parametrize(
    "url",
    ["postgresql+asyncpg://u@h1,h2/db", "mysql+aiomysql://u@h1,h2/db",
     "mariadb+asyncmy://u@h1,h2/db", "postgresql+psycopg://u@h1:5432,h2/db"],
)  # fmt: skip
def test_sqlalchemy_honours_every_knob(url: str) -> None:
    config = PoolConfig(url=url, target_session_attrs="primary", load_balance_hosts="random")
    t = get_adapter("sqlalchemy").translate(config)
    assert not set(HA) & set(t.unsupported), t.unsupported
    connect_args = t.native["connect_args"]
    if "psycopg" in url:  # libpq routes: its own keys, as the psycopg adapter passes them
        assert connect_args["host"] == "h1,h2" and connect_args["port"] == "5432,5432"
        assert connect_args["target_session_attrs"] == "primary"
        assert connect_args["load_balance_hosts"] == "random"
        assert {"hosts", "target_session_attrs", "host_recheck_interval"} <= set(t.emulated)
    else:  # poolbridge's connect wrapper routes: the dialect gets one host per attempt
        assert "host" not in connect_args and "target_session_attrs" not in connect_args
        assert set(HA) <= set(t.emulated)


def test_sqlalchemy_one_host_and_no_target_is_stock() -> None:
    from poolbridge.adapters.sqlalchemy._hosts import connect_bound, router

    for url in ("postgresql+asyncpg://u@h1/db", "postgresql+psycopg://u@h1/db",
                "mysql+asyncmy://u@h1/db"):  # fmt: skip
        config = PoolConfig(url=url)
        t = get_adapter("sqlalchemy").translate(config)
        assert not set(HA) & {*t.emulated, *t.unsupported, *t.native["connect_args"]}
        assert router(config, get_adapter("sqlalchemy").driver_for(config)) is None
        assert connect_bound(config, "psycopg") == config.connect_timeout
    several = PoolConfig(url="postgresql+psycopg://u@h1,h2/db", connect_timeout=1,
                         target_session_attrs="prefer-standby")  # fmt: skip
    # libpq: at least 2 s per host, every host twice under prefer-standby
    assert connect_bound(several, "psycopg") == 2 * 2 * 2
    assert connect_bound(several, "asyncpg") == 1


def test_sqlalchemy_native_arguments_carry_only_what_the_dialect_does_itself() -> None:
    from poolbridge.adapters.sqlalchemy import native_arguments

    # the asyncpg/MySQL routing is poolbridge's connect wrapper: refused by name here
    with pytest.raises(UnsupportedOptionError, match="hosts"):
        native_arguments(PoolConfig(url="postgresql+asyncpg://u@h1,h2/db"))
    # psycopg: libpq's keys travel in connect_args; the re-check needs poolbridge's pool
    with pytest.warns(UnsupportedOptionWarning) as caught:  # (one per knob at a default)
        kw = native_arguments(PoolConfig(url="postgresql+psycopg://u@h1,h2/db"))
    assert any("default host_recheck_interval" in str(w.message) for w in caught)
    assert kw["connect_args"]["host"] == "h1,h2"
    with pytest.raises(UnsupportedOptionError, match="host_recheck_interval"):
        native_arguments(PoolConfig(url="postgresql+psycopg://u@h1,h2/db", host_recheck_interval=5))


def test_an_entry_with_credentials_is_refused_without_echoing_them() -> None:
    with pytest.raises(ConfigError) as info:
        PoolConfig(url="postgresql://u@h/db", hosts=["app:s3cret-pw@h1:5432"])
    assert "s3cret-pw" not in str(info.value)
    assert "user and password belong in the URL" in str(info.value)


def test_config_show_prints_what_sqlalchemy_does_with_the_knobs(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    url = "postgresql+asyncpg://app@db1:5432,db2:5432/app?target_session_attrs=prefer-standby"
    env = {k: v for k, v in os.environ.items() if not k.startswith("POOLBRIDGE_")}
    r = subprocess.run(
        [sys.executable, "-m", "poolbridge", "config", "show", "--url", url,
         "--adapter", "sqlalchemy"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    section = r.stdout[r.stdout.index("adapter sqlalchemy (driver asyncpg)") :]
    emulated = section[section.index("emulated by poolbridge:") : section.index("unsupported:")]
    for knob in ("hosts", "target_session_attrs", "host_recheck_interval"):
        assert f"    {knob}: " in emulated, knob
    assert section.split("unsupported:", 1)[1].split() == ["(none)"]


@pytest.mark.parametrize(
    ("target", "balance", "placed_on", "standby", "fallback"),
    [
        ("any", "disable", "h2", False, True),  # every host fits: h1 was down
        ("any", "disable", "h1", False, False),
        ("any", "random", "h2", False, False),  # shuffled: no host is preferred
        ("read-write", "disable", "h2", False, False),  # h1 may just be a standby
        ("prefer-standby", "disable", "h1", False, True),  # no standby answered
        ("prefer-standby", "disable", "h2", True, False),
    ],
)  # fmt: skip
def test_libpq_placement_counts_as_fallback_only_where_it_proves_one(
    target: str, balance: str, placed_on: str, standby: bool, fallback: bool
) -> None:
    from poolbridge.drivers.hosts import place_libpq, retire_at, retired

    class Conn:  # a psycopg connection stand-in (weak-referenceable)
        pass

    config = PoolConfig(url="postgresql://u@h1:5432,h2:5432/db", target_session_attrs=target,
                        load_balance_hosts=balance, host_recheck_interval=5)  # fmt: skip
    conn = Conn()
    place_libpq(conn, config, placed_on, 5432, standby)
    assert (retire_at(conn, config) is not None) is fallback
    assert not retired(conn, config)  # not before the interval
    never = PoolConfig(url="postgresql://u@h1,h2/db", host_recheck_interval=None)
    assert retire_at(conn, never) is None
