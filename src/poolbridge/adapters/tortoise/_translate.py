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

import dataclasses
import importlib.util
import ssl as _ssl
from collections.abc import Mapping
from typing import Any

from poolbridge.adapters._doctable import doc_table
from poolbridge.adapters._engine_backed import engine_under_orm
from poolbridge.adapters.tortoise._keys import (
    KEYS,
    MYSQL_NOT_TO_DRIVER,
    family_of,
    tortoise_keys,
    url_without,
)
from poolbridge.adapters.tortoise.backends import BINDING_KEY, ENGINE_MODULES, ConfigPassword
from poolbridge.config.model import PoolConfig
from poolbridge.drivers.base import (
    SQLITE_REFUSED,
    libpq_connect_timeout,
    libpq_options_conflicts,
    pg_application_name,
    ssl_context,
)
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

PSYCOPG_EMULATED: dict[str, str] = {
    **psycopg_pool_under_orm(
        "psycopg_pool under Tortoise's psycopg client",
        notes={
            "min_size": ", opened at init()",
            "pre_ping": "; unset: on, as Tortoise's client always checks (False turns it off)",
            "password": " (never in the logged conninfo)",
        },
    ),
    "ssl": "a mode name: libpq sslmode on every connection; True or an SSLContext: to "
    "Tortoise's client as stock, which makes it sslmode=require or verify-full and drops the "
    "context (UnsupportedOptionWarning says so)",
}
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


def dropped_warnings(config: PoolConfig, driver: str) -> list[str]:
    """What the stock stack silently discards of this config (poolbridge says it instead)."""
    out: list[str] = []
    if driver == "psycopg" and isinstance(config.ssl, _ssl.SSLContext):
        mode = "verify-full" if config.ssl.check_hostname else "require"
        out.append(
            f"pool {config.name!r}: Tortoise's psycopg client reduces the ssl SSLContext to "
            f"sslmode={mode} and drops the context itself (its CA, certificates, protocol "
            "versions and ciphers); pass sslrootcert/sslcert/sslkey in the URL query for "
            "libpq, or give ssl as a mode name"
        )
    theirs = tortoise_keys(config, driver).get("server_settings") if driver == "psycopg" else None
    if isinstance(theirs, Mapping) and "options" in theirs:
        out.append(
            f"pool {config.name!r}: Tortoise's psycopg client overwrites "
            "server_settings['options'] with its own search_path (schema), so those "
            "libpq options never reach the server, as with Tortoise alone; give them as "
            "driver_options['options'] or the URL's ?options=, which poolbridge merges"
        )
    return out


def emulated(config: PoolConfig, driver: str) -> dict[str, str]:
    if driver == "psycopg":
        return dict(PSYCOPG_EMULATED)
    if on_engine(config, driver):
        return dict(ENGINE_EMULATED)
    return {"min_size": "its one connection, opened at init()"}


def unsupported(config: PoolConfig, driver: str) -> dict[str, str]:
    """Knobs this config sets (or defaults to) that the chosen backend cannot honour."""
    if driver == "psycopg":
        # the user's libpq options are merged with ours; a disagreeing knob is refused
        return libpq_options_conflicts(config)
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

    Tortoise's own keys found in the URL query or driver_options (see ``_keys``) are in the
    credentials, where Tortoise's client code gives them their stock meaning. Unknown
    values (an SSLContext, driver options) are passed by reference, never copied.
    """
    keys = tortoise_keys(config, driver)
    if driver == "aiosqlite":
        path = config.database_url.database or ":memory:"
        creds_sqlite: dict[str, Any] = {"file_path": path, **keys}
        if in_memory(config):
            return {"engine": "tortoise.backends.sqlite", "credentials": creds_sqlite}
        if binding is not None:
            creds_sqlite[BINDING_KEY] = binding
        return {"engine": ENGINE_MODULES[driver], "credentials": creds_sqlite}
    creds = _host_parts(config)
    creds["minsize"] = config.min_size
    creds["maxsize"] = config.max_size
    if driver == "asyncpg":
        creds.setdefault("port", 5432)
        creds["timeout"] = config.connect_timeout  # asyncpg: timeout = CONNECT timeout
        if config.ssl is not None:
            creds["ssl"] = config.ssl
        creds.update(keys)
        # the one rule (drivers/base.py): Tortoise's key from driver_options, then its
        # server_settings, then session, then its key from the URL query, else the pool name
        creds["application_name"] = pg_application_name(config)
    elif driver == "psycopg":
        creds.setdefault("port", 5432)
        creds["timeout"] = config.acquire_timeout  # psycopg_pool: timeout = ACQUIRE timeout
        creds["max_lifetime"] = config.max_lifetime if config.max_lifetime is not None else 1e9
        creds["max_idle"] = config.max_idle if config.max_idle is not None else 1e9
        creds["max_waiting"] = config.max_waiting
        creds["reconnect_timeout"] = config.acquire_timeout
        settings: dict[str, Any] = {
            "connect_timeout": str(libpq_connect_timeout(config.connect_timeout))
        }
        if isinstance(config.ssl, str):
            settings["sslmode"] = config.ssl
        elif config.ssl is not None:
            creds["ssl"] = config.ssl  # Tortoise's client reduces it to an sslmode, as stock
        # libpq keys of the URL query; its ``options`` are merged with poolbridge's and the
        # user's when the pool is created (Tortoise's client overwrites server_settings'
        # ``options`` with its search_path)
        query = config.database_url.query
        settings.update((k, v) for k, v in query.items() if k not in keys and k != "options")
        user_settings = keys.pop("server_settings", None) or {}
        creds.update(keys)
        creds["server_settings"] = {**settings, **user_settings}
        # the one rule (drivers/base.py), as on asyncpg above
        creds["application_name"] = pg_application_name(config)
    else:  # MySQL
        creds.setdefault("port", 3306)
        creds["connect_timeout"] = config.connect_timeout
        ssl = mysql_ssl(config)
        if ssl is not None:
            creds["ssl"] = ssl
        creds.update(keys)
    if binding is not None:
        creds[BINDING_KEY] = binding
    return {"engine": ENGINE_MODULES[driver], "credentials": creds}


def mysql_ssl(config: PoolConfig) -> Any:
    """What the MySQL driver gets for ``config.ssl``: True and an SSLContext as they are
    (the driver's own meaning, as with Tortoise alone), a mode name as an SSLContext."""
    if config.ssl is True or isinstance(config.ssl, _ssl.SSLContext):
        return config.ssl
    return ssl_context(config.ssl)


def engine_config(config: PoolConfig, driver: str) -> PoolConfig:
    """The config poolbridge's pool under Tortoise's client runs: ``config`` with Tortoise's
    keys taken out of the URL query and driver_options and given their stock meaning
    (session settings, driver keywords), and the stack's stock defaults where ``config``
    leaves a knob unset (psycopg: Tortoise's client checks every connection on checkout)."""
    keys = tortoise_keys(config, driver)
    family = family_of(driver)
    query = config.database_url.query
    # SQLite: every query key is a PRAGMA, applied by the client
    taken = set(query) if family == "sqlite" else {k for k in query if k in keys}
    options = {k: v for k, v in config.driver_options.items() if k not in keys}
    session = dict(config.session)
    changes: dict[str, Any] = {}
    if family == "asyncpg":
        pg: dict[str, str] = {}
        server_settings = keys.get("server_settings")
        if isinstance(server_settings, Mapping):
            pg.update({str(k): str(v) for k, v in server_settings.items()})
        if keys.get("schema"):
            pg["search_path"] = str(keys["schema"])
        session = {**pg, **session}
        # the one rule (drivers/base.py): Tortoise's application_name key or server_settings
        # entry from driver_options wins over session, session over the key in the URL query
        session["application_name"] = pg_application_name(config)
        for key, value in keys.items():
            rule = KEYS[family].get(key)
            if rule is not None and rule.to_driver:
                options.setdefault(key, value)
    elif family == "psycopg":
        if config.pre_ping is None:
            changes["pre_ping"] = True  # Tortoise's psycopg client: check=check_connection
    elif family == "mysql":
        opts: dict[str, Any] = {"charset": "utf8mb4", "sql_mode": "STRICT_TRANS_TABLES"}
        opts.update((k, v) for k, v in keys.items() if k not in MYSQL_NOT_TO_DRIVER)
        opts.update(options)
        opts["autocommit"] = True  # Tortoise's MySQL client always runs in autocommit
        if config.ssl is True:  # the driver's own meaning of True, as with Tortoise alone
            opts["ssl"] = True
            changes["ssl"] = None
        options = opts
    return dataclasses.replace(
        config,
        url=url_without(config.url, taken),
        driver_options=options,
        session=session,
        **changes,
    )


def tortoise_doc_table() -> str:
    """The Tortoise adapter's table as it appears in docs/adapters/tortoise.md."""
    memory = {"min_size": "its one connection, opened at init() (min_size above 1: **no**)"}
    no_sqlite = {
        "statement_timeout": "SQLite has no server-side statement timeout",
        "isolation_level": "SQLite transactions are serializable; no level to choose",
        "ssl": "SQLite is a local file: there is no connection to encrypt",
        **SQLITE_REFUSED,
    }  # what the aiosqlite shim reports when these are set
    from poolbridge.adapters._ha import ENGINE_HA, SQLITE_REFUSED_HA, refused_ha

    engine = {**ENGINE_EMULATED, **ENGINE_HA}
    own_client = refused_ha(TORTOISE_OWN_CLIENT)
    return doc_table(
        {
            "asyncpg": (engine, {}),
            "MySQL (asyncmy, else aiomysql)": (engine, {}),
            "psycopg": (PSYCOPG_EMULATED, {**PSYCOPG_UNSUPPORTED, **own_client}),
            "SQLite file": (engine, {**no_sqlite, **SQLITE_REFUSED_HA}),
            "SQLite :memory:": (memory, {**SQLITE_REASONS, **SQLITE_REFUSED_HA}),
        }
    )


#: why Tortoise's own (non-engine) clients cannot take several hosts
TORTOISE_OWN_CLIENT = (
    "Tortoise's own client opens its connections (one host): use an engine-backed driver "
    "(asyncpg, aiomysql, asyncmy) for several hosts"
)
