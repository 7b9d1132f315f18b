"""translate() / engine_kwargs() tables: pure data, no server."""

from __future__ import annotations

import ssl
import warnings

import pytest

from poolbridge.adapters.sqlalchemy import adapter, engine_kwargs
from poolbridge.config.model import PoolConfig
from poolbridge.errors import UnsupportedOptionError, UnsupportedOptionWarning

PG = "postgresql://app:s3cret-pw@127.0.0.1:5432/test"
MY = "mysql://root@127.0.0.1:3306/test"


def cfg(url: str = PG, **kw: object) -> PoolConfig:
    return PoolConfig(url=url, **kw)  # type: ignore[arg-type]


def test_pool_sizing_is_a_hard_cap() -> None:
    t = adapter.translate(cfg(min_size=2, max_size=7, acquire_timeout=3.5))
    assert t.native["pool_size"] == 7
    assert t.native["max_overflow"] == 0
    assert t.native["pool_timeout"] == 3.5
    assert "min_size" in t.emulated  # SQLAlchemy starts empty


def test_url_never_carries_the_password() -> None:
    t = adapter.translate(cfg())
    assert t.native["url"] == "postgresql+asyncpg://app@127.0.0.1:5432/test"
    assert "s3cret" not in repr(t)


@pytest.mark.parametrize(
    ("driver", "key", "expected"),
    [
        ("asyncpg", "timeout", 4.0),
        ("psycopg", "connect_timeout", 4),
        ("aiomysql", "connect_timeout", 4.0),
        ("asyncmy", "connect_timeout", 4.0),
    ],
)
def test_connect_timeout_per_driver(driver: str, key: str, expected: object) -> None:
    url = PG if driver in ("asyncpg", "psycopg") else MY
    t = adapter.translate(cfg(url, driver=driver, connect_timeout=4.0))
    assert t.native["connect_args"][key] == expected
    assert "connect_timeout" in t.emulated  # the whole handshake is bounded too


def test_asyncpg_session_statement_timeout_and_name() -> None:
    t = adapter.translate(
        cfg(driver="asyncpg", statement_timeout=1.5, session={"search_path": "app"}, name="api")
    )
    assert t.native["connect_args"]["server_settings"] == {
        "application_name": "api",
        "search_path": "app",
        "statement_timeout": "1500",
    }


def test_psycopg_options_and_statement_cache() -> None:
    t = adapter.translate(
        cfg(
            driver="psycopg",
            statement_timeout=2,
            session={"search_path": "a b"},
            statement_cache=False,
            ssl="require",
            name="api",
        )
    )
    ca = t.native["connect_args"]
    assert ca["application_name"] == "api"
    assert ca["options"] == "-c search_path=a\\ b -c statement_timeout=2000"
    assert ca["prepare_threshold"] is None
    assert ca["sslmode"] == "require"


def test_asyncpg_pgbouncer_safe_settings() -> None:
    config = cfg(driver="asyncpg", statement_cache=False)
    ca = adapter.translate(config).native["connect_args"]
    assert ca["prepared_statement_cache_size"] == 0 and ca["statement_cache_size"] == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsupportedOptionWarning)
        kw = engine_kwargs(config)
    name_func = kw["connect_args"]["prepared_statement_name_func"]
    assert name_func() == ""  # unnamed: asyncpg re-parses it per execute, nothing left behind


def test_mysql_session_and_statement_timeout_go_to_init_command() -> None:
    t = adapter.translate(
        cfg(MY, driver="aiomysql", session={"time_zone": "+00:00", "sql_mode": "ANSI"},
            statement_timeout=2.5)
    )  # fmt: skip
    assert t.native["connect_args"]["init_command"] == (
        "SET SESSION time_zone='+00:00', SESSION sql_mode='ANSI', SESSION max_statement_time=2.5"
    )


def test_mysql_ssl_modes_become_contexts() -> None:
    t = adapter.translate(cfg(MY, ssl="require"))
    ctx = t.native["connect_args"]["ssl"]
    assert isinstance(ctx, ssl.SSLContext) and ctx.verify_mode == ssl.CERT_NONE
    t = adapter.translate(cfg(MY, ssl="verify-full"))
    assert t.native["connect_args"]["ssl"].check_hostname is True


def test_isolation_and_reset() -> None:
    t = adapter.translate(cfg(isolation_level="repeatable_read", reset="full"))
    assert t.native["isolation_level"] == "REPEATABLE READ"
    assert t.native["pool_reset_on_return"] == "rollback"
    assert "reset" in t.emulated


def test_driver_options_pass_untouched() -> None:
    marker = object()
    t = adapter.translate(cfg(driver_options={"custom": marker}))
    assert t.native["connect_args"]["custom"] is marker


def test_sqlite_unsupported_knobs() -> None:
    t = adapter.translate(
        cfg("sqlite:///x.db", statement_timeout=1.0, isolation_level="read_committed")
    )
    assert set(t.unsupported) == {"statement_timeout", "isolation_level"}
    with pytest.raises(UnsupportedOptionError) as info:
        engine_kwargs(cfg("sqlite:///x.db", statement_timeout=1.0))
    assert "statement_timeout" in str(info.value)


def test_memory_sqlite_needs_max_size_one() -> None:
    with pytest.raises(UnsupportedOptionError):
        engine_kwargs(cfg("sqlite://", max_size=2))
    with pytest.raises(UnsupportedOptionError):
        engine_kwargs(cfg("sqlite:///:memory:"))  # the default max_size=10 too
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsupportedOptionWarning)
        kw = engine_kwargs(cfg("sqlite:///:memory:", max_size=1, max_lifetime=None))
    assert kw["poolclass"].__name__ == "StaticPool"


def test_engine_kwargs_refuses_explicit_emulated_knobs_and_warns_on_defaults() -> None:
    with pytest.raises(UnsupportedOptionError) as info:
        engine_kwargs(cfg(max_waiting=3, max_idle=5))
    assert {"max_waiting", "max_idle"} <= set(info.value.problems)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kw = engine_kwargs(cfg())
    warned = {str(w.message).split("default ")[1].split("=")[0] for w in caught}
    assert all(issubclass(w.category, UnsupportedOptionWarning) for w in caught)
    assert warned == {"min_size", "max_idle", "retry"}  # one warning each, no error
    assert kw["pool_size"] == 10 and kw["max_overflow"] == 0
    assert "s3cret" not in repr(kw["url"]) and kw["url"].password == "s3cret-pw"


def test_callable_password_is_emulated_not_native() -> None:
    t = adapter.translate(cfg(password=lambda: "from-vault"))
    assert "password" in t.emulated
    assert "from-vault" not in repr(t.native)


def test_unknown_driver_is_refused() -> None:
    with pytest.raises(UnsupportedOptionError):
        engine_kwargs(cfg(PG, driver="aiopg"))


def test_every_claimed_knob_has_an_open_requirement() -> None:
    from poolbridge.testing.requirements import KNOB_REQUIREMENTS, closed_reason

    for url, driver, backend in [
        (PG, "asyncpg", "postgresql"), (PG, "psycopg", "postgresql"),
        (MY, "aiomysql", "mysql"), (MY, "asyncmy", "mysql"),
        ("sqlite:///x.db", "aiosqlite", "sqlite"),
    ]:  # fmt: skip
        t = adapter.translate(
            cfg(url, driver=driver, max_waiting=2, leak_timeout=5, password=lambda: "x")
        )
        for knob in t.emulated:
            names = KNOB_REQUIREMENTS.get(knob, ())
            assert names, knob
            assert any(closed_reason(adapter, backend, driver, n) is None for n in names), (
                driver,
                knob,
            )


def test_statement_timeout_client_backstops() -> None:
    t = adapter.translate(cfg(driver="asyncpg", statement_timeout=2.0))
    assert t.native["connect_args"]["command_timeout"] == 2.5
    t = adapter.translate(cfg(MY, driver="asyncmy", statement_timeout=2.0))
    assert t.native["connect_args"]["read_timeout"] == 2.5
    for url, driver in ((PG, "psycopg"), (MY, "aiomysql")):
        t = adapter.translate(cfg(url, driver=driver, statement_timeout=2.0))
        assert "statement_timeout" in t.emulated  # watchdog through cursor events
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsupportedOptionWarning)
        # plain arguments keep the server-side limit: no error for an explicit value
        assert (
            "options" in engine_kwargs(cfg(driver="psycopg", statement_timeout=2.0))["connect_args"]
        )


def test_asyncpg_driver_options_server_settings_merge_key_by_key() -> None:
    user = {"server_settings": {"work_mem": "3MB", "search_path": "mine"}, "command_timeout": 9}
    t = adapter.translate(
        cfg(driver="asyncpg", statement_timeout=1.5, session={"search_path": "app"},
            name="api", driver_options=user)
    )  # fmt: skip
    ca = t.native["connect_args"]
    assert ca["server_settings"] == {
        "application_name": "api",
        "search_path": "mine",  # the user's driver setting beats session, as on every stack
        "statement_timeout": "1500",
        "work_mem": "3MB",
    }
    assert ca["command_timeout"] == 9 and ca["timeout"] == 10.0  # user's key wins, ours stay
    assert user["server_settings"] == {"work_mem": "3MB", "search_path": "mine"}  # not mutated
