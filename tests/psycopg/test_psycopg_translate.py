"""The psycopg adapter's translation table and connection arguments (no server needed)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from poolbridge import PoolConfig, UnsupportedOptionError
from poolbridge.adapters.psycopg import adapter, conninfo_kwargs, libpq_options

URL = "postgresql://app:s3cret@db.example:6543/appdb?sslmode=prefer"


def test_importing_the_adapter_does_not_import_psycopg() -> None:
    code = (
        "import sys, poolbridge.adapters.psycopg as m; "
        "m.adapter.translate(m.PoolConfig(url='postgresql://u@h/db')); "
        "bad = [n for n in ('psycopg', 'psycopg_pool') if n in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr or proc.stdout


def test_native_table_maps_every_pool_knob() -> None:
    cfg = PoolConfig(
        url=URL, min_size=2, max_size=7, acquire_timeout=3.5, max_waiting=4,
        max_lifetime=120.0, max_idle=30.0, pre_ping=True, name="orders",
    )  # fmt: skip
    native = adapter.translate(cfg).native
    assert native["min_size"] == 2 and native["max_size"] == 7
    assert native["timeout"] == 3.5 and native["max_waiting"] == 4
    assert native["max_lifetime"] == 120.0 and native["max_idle"] == 30.0
    assert native["check"] == "check_connection bounded by connect_timeout and the acquire deadline"
    assert native["name"] == "orders" and native["open"] is False


def test_none_lifetimes_mean_never() -> None:
    native = adapter.translate(PoolConfig(url=URL, max_lifetime=None, max_idle=None)).native
    assert native["max_lifetime"] > 10 * 365 * 24 * 3600
    assert native["max_idle"] > 10 * 365 * 24 * 3600


def test_conninfo_carries_url_session_and_driver_options() -> None:
    marker = object()
    cfg = PoolConfig(
        url=URL,
        name="orders",
        connect_timeout=0.3,
        statement_timeout=1.5,
        isolation_level="repeatable_read",
        session={"search_path": "app, public", "TimeZone": "UTC"},
        statement_cache=False,
        driver_options={"cursor_factory": marker},
    )
    kw = conninfo_kwargs(cfg, "pw")
    assert kw["host"] == "db.example" and kw["port"] == 6543 and kw["dbname"] == "appdb"
    assert kw["user"] == "app" and kw["password"] == "pw"
    assert kw["application_name"] == "orders"
    assert kw["connect_timeout"] == 2  # libpq: whole seconds, at least 2
    assert kw["sslmode"] == "prefer"  # driver key from the URL query
    assert kw["prepare_threshold"] is None
    assert kw["cursor_factory"] is marker  # driver options untouched, not copied
    assert kw["options"] == (
        "-c search_path=app,\\ public -c TimeZone=UTC "
        "-c statement_timeout=1500 -c default_transaction_isolation=repeatable\\ read"
    )


def test_no_options_when_nothing_to_set() -> None:
    assert libpq_options(PoolConfig(url=URL)) == ""
    assert "options" not in conninfo_kwargs(PoolConfig(url=URL), None)


def test_ssl_modes() -> None:
    assert conninfo_kwargs(PoolConfig(url=URL, ssl="verify-full"), None)["sslmode"] == (
        "prefer"  # an explicit URL query key wins over the field (it is the driver's own)
    )
    plain = "postgresql://app@db/appdb"
    assert conninfo_kwargs(PoolConfig(url=plain, ssl="require"), None)["sslmode"] == "require"


def test_ssl_context_is_unsupported() -> None:
    import ssl

    cfg = PoolConfig(url="postgresql://app@db/appdb", ssl=ssl.create_default_context())
    assert "ssl" in adapter.translate(cfg).unsupported


@pytest.mark.asyncio
async def test_explicit_unsupported_knob_raises() -> None:
    import ssl

    cfg = PoolConfig(url="postgresql://app@db/appdb", ssl=ssl.create_default_context())
    with pytest.raises(UnsupportedOptionError, match="ssl"):
        await adapter.open(cfg)


@pytest.mark.asyncio
async def test_mysql_url_is_refused() -> None:
    with pytest.raises(UnsupportedOptionError):
        await adapter.open(PoolConfig(url="mysql://root@127.0.0.1/test"))


def test_drivers_and_entry_point_names() -> None:
    from poolbridge.testing._placeholder import PlaceholderPool

    assert adapter.drivers == {"postgresql": ("psycopg",)}
    assert list(adapter.entry_points(PlaceholderPool())) == ["handle", "pool.connection"]
