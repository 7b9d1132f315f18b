"""The Tortoise adapter's translation table (pure data: no Tortoise import).

Three kinds of backend:

- **engine** (asyncpg, and the MySQL driver Tortoise imported: asyncmy, else aiomysql):
  Tortoise's own pools wait forever, have no lifetime by age, no pre-ping, no warm-up, no
  hooks. poolbridge's engine sits under Tortoise (a backend client whose ``_pool`` is the
  engine) and provides every knob.
- **psycopg**: psycopg_pool honours the knobs; poolbridge keeps it and adds its errors,
  hooks and stats (a pool subclass). ``timeout`` there is the ACQUIRE timeout.
- **sqlite**: a file database gets the engine too (a pool of aiosqlite connections under
  Tortoise's SQLite client). ``:memory:`` cannot be pooled (every connection would be its
  own database): it runs on Tortoise's own client, one connection behind an asyncio.Lock,
  and the pool knobs it cannot honour are reported, never dropped.
"""

from __future__ import annotations

import importlib.util
import ssl as _ssl
from typing import Any

from poolbridge.adapters._doctable import doc_table
from poolbridge.adapters._engine_backed import engine_under_orm
from poolbridge.adapters.tortoise.backends import BINDING_KEY, ENGINE_MODULES, ConfigPassword
from poolbridge.config.model import PoolConfig
from poolbridge.drivers.base import SQLITE_REFUSED
from poolbridge.drivers.psycopg.conninfo import psycopg_pool_under_orm

__all__ = [
    "ENGINE_DRIVERS",
    "ENGINE_MODULE",
    "SQLITE_REASONS",
    "connection_dict",
    "emulated",
    "mysql_driver_of_tortoise",
    "unsupported",
]

#: the package of poolbridge's Tortoise ``engine`` modules (one per backend, see
#: ENGINE_MODULES); itself a valid ``engine`` path, and a models module without models
ENGINE_MODULE = "poolbridge.adapters.tortoise.backends"
ENGINE_DRIVERS = ("asyncpg", "asyncmy", "aiomysql", "aiosqlite")

ENGINE_EMULATED: dict[str, str] = engine_under_orm(
    "poolbridge's pool engine under Tortoise's client",
    opened="init() (Tortoise alone opens lazily)",
    notes={
        "acquire_timeout": " (Tortoise's asyncpg/MySQL pools wait forever)",
        "password": " (never in Tortoise's config/logs)",
    },
)

PSYCOPG_EMULATED: dict[str, str] = psycopg_pool_under_orm(
    "psycopg_pool under Tortoise's psycopg client",
    notes={
        "min_size": ", opened at init()",
        "pre_ping": " only when pre_ping is set (Tortoise alone always pings)",
        "password": " (never in the logged conninfo)",
    },
)
PSYCOPG_UNSUPPORTED: dict[str, str] = {}

_ONE = "SQLite :memory: runs on Tortoise's own client: one connection behind an asyncio.Lock"
SQLITE_REASONS: dict[str, str] = {
    "max_size": f"{_ONE}: max_size is always 1",
    "acquire_timeout": f"{_ONE}: callers wait on the lock without a timeout",
    "connect_timeout": "Tortoise's SQLite backend passes no timeout to aiosqlite.connect",
    "max_lifetime": f"{_ONE}, kept until close",
    "max_idle": f"{_ONE}, kept until close",
    "pre_ping": f"{_ONE}; nothing checks it",
    "max_waiting": f"{_ONE}: the lock queue is unbounded",
    "reset": f"{_ONE} shared by every caller; nothing resets it between uses",
    "leak_timeout": f"{_ONE}; there is no checkout to track",
    "retry": "Tortoise's SQLite backend opens its connection once, without retry",
    "statement_timeout": "SQLite has no statement timeout",
    "isolation_level": "SQLite has no isolation level setting",
    "session": "Tortoise turns extra SQLite credentials into PRAGMAs; poolbridge adds none",
    "statement_cache": "SQLite has no server-side prepared statements",
    "ssl": "SQLite is a local file: there is no connection to encrypt",
    "password": "SQLite has no password",
    "driver_options": f"{_ONE}, opened by Tortoise without driver options (extra "
    "credentials become PRAGMAs)",
}


def mysql_driver_of_tortoise() -> str:
    """The driver Tortoise's MySQL backend imports: asyncmy when installed, else aiomysql."""
    return "asyncmy" if importlib.util.find_spec("asyncmy") is not None else "aiomysql"


def in_memory(config: PoolConfig) -> bool:
    """SQLite ``:memory:``: each connection would be a database of its own."""
    return config.backend == "sqlite" and config.database_url.database in (None, "", ":memory:")


def on_engine(config: PoolConfig, driver: str) -> bool:
    """True when poolbridge's engine runs under Tortoise's client for this config."""
    return driver in ENGINE_DRIVERS and not in_memory(config)


def emulated(config: PoolConfig, driver: str) -> dict[str, str]:
    if driver == "psycopg":
        return dict(PSYCOPG_EMULATED)
    if on_engine(config, driver):
        return dict(ENGINE_EMULATED)
    return {"min_size": "its one connection, opened at init()"}


def unsupported(config: PoolConfig, driver: str) -> dict[str, str]:
    """Knobs this config sets (or defaults to) that the chosen backend cannot honour."""
    if driver == "psycopg":
        out: dict[str, str] = {}
        if isinstance(config.ssl, _ssl.SSLContext):
            out["ssl"] = "libpq takes sslmode/sslrootcert names, not an SSLContext object"
        return out
    if driver == "aiosqlite" and in_memory(config):
        out = {}
        for fname, why in SQLITE_REASONS.items():
            value = getattr(config, fname)
            if fname == "max_size" and value == 1:
                continue
            if fname == "password" and value is None:
                continue
            if fname in ("session", "driver_options") and not value:
                continue
            if fname == "ssl" and value == "disable":
                continue
            if fname == "statement_cache" and value:
                continue
            if fname in ("pre_ping",) and not value:
                continue
            if fname == "reset" and value == "rollback":
                continue  # autocommit connection: nothing is left open between uses
            if fname == "max_waiting" and value == 0:
                continue
            if value is None:
                continue
            out[fname] = why
        if config.min_size > 1:
            out["min_size"] = f"{_ONE}: min_size above 1 cannot hold"
        return out
    return {}


def _host_parts(config: PoolConfig) -> dict[str, Any]:
    u = config.database_url
    parts: dict[str, Any] = {"host": u.host or "127.0.0.1", "user": u.username,
                             "database": u.database}  # fmt: skip
    if u.port is not None:
        parts["port"] = u.port
    if config.password is not None or u.password is not None:
        parts["password"] = ConfigPassword(config)
    return {k: v for k, v in parts.items() if v is not None}


def connection_dict(config: PoolConfig, driver: str, binding: Any | None) -> dict[str, Any]:
    """The ``{"engine": ..., "credentials": {...}}`` dict of one Tortoise connection.

    Unknown values (an SSLContext, driver options) are passed by reference, never copied.
    """
    if driver == "aiosqlite":
        path = config.database_url.database or ":memory:"
        if in_memory(config):
            return {"engine": "tortoise.backends.sqlite", "credentials": {"file_path": path}}
        creds_sqlite: dict[str, Any] = {"file_path": path}
        if binding is not None:
            creds_sqlite[BINDING_KEY] = binding
        return {"engine": ENGINE_MODULES[driver], "credentials": creds_sqlite}
    creds = _host_parts(config)
    creds["minsize"] = config.min_size
    creds["maxsize"] = config.max_size
    if driver == "asyncpg":
        creds.setdefault("port", 5432)
        creds["application_name"] = config.name
        creds["timeout"] = config.connect_timeout  # asyncpg: timeout = CONNECT timeout
        if config.ssl is not None:
            creds["ssl"] = config.ssl
    elif driver == "psycopg":
        creds.setdefault("port", 5432)
        creds["application_name"] = config.name
        creds["timeout"] = config.acquire_timeout  # psycopg_pool: timeout = ACQUIRE timeout
        creds["max_lifetime"] = config.max_lifetime if config.max_lifetime is not None else 1e9
        creds["max_idle"] = config.max_idle if config.max_idle is not None else 1e9
        creds["max_waiting"] = config.max_waiting
        creds["reconnect_timeout"] = config.acquire_timeout
        settings: dict[str, Any] = {"connect_timeout": str(max(1, round(config.connect_timeout)))}
        if isinstance(config.ssl, str):
            settings["sslmode"] = config.ssl
        settings.update(config.database_url.query)
        creds["server_settings"] = settings
    else:  # MySQL
        creds.setdefault("port", 3306)
        creds["connect_timeout"] = config.connect_timeout
    if binding is not None:
        creds[BINDING_KEY] = binding
    return {"engine": ENGINE_MODULES[driver], "credentials": creds}


def mysql_engine_options(config: PoolConfig) -> dict[str, Any]:
    """Driver options Tortoise's MySQL client relies on (set on EVERY engine connection)."""
    opts: dict[str, Any] = {"autocommit": True, "charset": "utf8mb4",
                            "sql_mode": "STRICT_TRANS_TABLES"}  # fmt: skip
    opts.update(config.database_url.query)
    opts.update(config.driver_options)
    return opts


def tortoise_doc_table() -> str:
    """The Tortoise adapter's table as it appears in docs/adapters/tortoise.md."""
    memory = {"min_size": "its one connection, opened at init() (min_size above 1: **no**)"}
    no_sqlite = {
        "statement_timeout": "SQLite has no server-side statement timeout",
        "isolation_level": "SQLite transactions are serializable; no level to choose",
        "ssl": "SQLite is a local file: there is no connection to encrypt",
        **SQLITE_REFUSED,
    }  # what the aiosqlite shim reports when these are set
    return doc_table(
        {
            "asyncpg": (ENGINE_EMULATED, {}),
            "MySQL (asyncmy, else aiomysql)": (ENGINE_EMULATED, {}),
            "psycopg": (PSYCOPG_EMULATED, PSYCOPG_UNSUPPORTED),
            "SQLite file": (ENGINE_EMULATED, no_sqlite),
            "SQLite :memory:": (memory, SQLITE_REASONS),
        }
    )
