"""What becomes of every connect kwarg and ``pool_params`` key of peewee-async's databases.

peewee-async 2.x merges the database's connect kwargs (``PostgresqlDatabase("app",
host=..., sql_mode=...)``, plus the defaults peewee and peewee-async add) into
``pool_params`` and hands them all to the pool backend. On poolbridge's backends each key
is one of:

- ``stock``: reaches the driver's connect exactly as it does on peewee-async's own backend;
- ``translated``: the PoolConfig field named in the note carries it; given to the database
  as well, it is refused (UnsupportedOptionError naming the key and the field), so the
  config stays the one source;
- ``refused``: no meaning on poolbridge (UnsupportedOptionError naming the key).

A key not listed takes the ``*`` row of its driver. :data:`STOCK_KEYS` is the data the
backends act on and the table docs/adapters/peewee_async.md shows.
"""

from __future__ import annotations

from typing import Any

from poolbridge.config.model import PoolConfig
from poolbridge.errors import UnsupportedOptionError

__all__ = ["STOCK_KEYS", "driver_kwargs", "stock_key_table"]

STOCK, TRANSLATED, REFUSED = "stock", "translated", "refused"

_DB_NAME = (TRANSLATED, "`url` (its database)")
_HOST = (TRANSLATED, "`url` (host)")
_PORT = (TRANSLATED, "`url` (port)")
_USER = (TRANSLATED, "`url` (user)")
_PASSWORD = (TRANSLATED, "`password` or the URL's password")
_CONNECT_TIMEOUT = (TRANSLATED, "`connect_timeout`")
_MIN = (TRANSLATED, "`min_size`")
_MAX = (TRANSLATED, "`max_size`")
_SSL = (TRANSLATED, "`ssl`")
_LOOP = (REFUSED, "the pool binds to the running loop at first use")
_ON_CONNECT = (REFUSED, "use `Hooks(on_connect=...)`")

#: driver -> key -> (treatment, note). The ``*`` row covers every key not listed.
STOCK_KEYS: dict[str, dict[str, tuple[str, str]]] = {
    "aiopg": {
        "database": _DB_NAME,
        "dsn": (TRANSLATED, "`url`"),
        "host": _HOST,
        "port": _PORT,
        "user": _USER,
        "password": _PASSWORD,
        "connect_timeout": (
            TRANSLATED,
            "`connect_timeout` (peewee-async renames it to aiopg's `timeout`)",
        ),
        "timeout": (
            TRANSLATED,
            "`connect_timeout` and `statement_timeout` (aiopg's per-operation bound)",
        ),
        "minsize": _MIN,
        "maxsize": _MAX,
        "pool_recycle": (TRANSLATED, "`max_lifetime`"),
        "sslmode": _SSL,
        "options": (TRANSLATED, "`session`, `statement_timeout`, `isolation_level`"),
        "on_connect": _ON_CONNECT,
        "enable_json": (STOCK, "aiopg connect option; peewee-async sets True"),
        "enable_hstore": (STOCK, "aiopg connect option; peewee-async sets `register_hstore`"),
        "enable_uuid": (STOCK, "aiopg connect option"),
        "echo": (STOCK, "aiopg connect option"),
        "application_name": (STOCK, "libpq key; the pool name when not given"),
        "*": (STOCK, "any other libpq key (sslrootcert, target_session_attrs, ...)"),
    },
    "psycopg": {
        "database": _DB_NAME,
        "host": _HOST,
        "port": _PORT,
        "user": _USER,
        "password": (TRANSLATED, "`password` or the URL's (never formatted into the DSN)"),
        "min_size": _MIN,
        "max_size": _MAX,
        "timeout": (TRANSLATED, "`acquire_timeout`"),
        "max_waiting": (TRANSLATED, "`max_waiting`"),
        "max_lifetime": (TRANSLATED, "`max_lifetime`"),
        "max_idle": (TRANSLATED, "`max_idle`"),
        "reconnect_timeout": (TRANSLATED, "`acquire_timeout` (reconnects within it)"),
        "check": (TRANSLATED, "`pre_ping`"),
        "name": (TRANSLATED, "`name`"),
        "configure": _ON_CONNECT,
        "reset": (REFUSED, "use `reset=` in the PoolConfig or `Hooks(on_checkin=...)`"),
        "reconnect_failed": (REFUSED, "poolbridge reports failed connects as PoolTimeout"),
        "connection_class": (REFUSED, "poolbridge's pool opens psycopg.AsyncConnection"),
        "num_workers": (STOCK, "psycopg_pool option"),
        "*": (
            REFUSED,
            "peewee-async passes other keys to AsyncConnectionPool (a TypeError stock); "
            "driver keys go in `driver_options`",
        ),
    },
    "aiomysql": {
        "database": _DB_NAME,
        "db": _DB_NAME,
        "host": _HOST,
        "port": _PORT,
        "user": _USER,
        "password": _PASSWORD,
        "passwd": _PASSWORD,
        "connect_timeout": _CONNECT_TIMEOUT,
        "minsize": _MIN,
        "maxsize": _MAX,
        "pool_recycle": (TRANSLATED, "`max_lifetime` / `max_idle` (aiomysql's is idle time)"),
        "ssl": _SSL,
        "loop": _LOOP,
        "charset": (STOCK, "aiomysql connect option; peewee sets 'utf8'"),
        "sql_mode": (STOCK, "aiomysql connect option; peewee sets 'PIPES_AS_CONCAT'"),
        "use_unicode": (STOCK, "aiomysql connect option; peewee sets True"),
        "autocommit": (STOCK, "aiomysql connect option; peewee-async sets True"),
        "echo": (STOCK, "aiomysql connect option"),
        "init_command": (STOCK, "aiomysql connect option"),
        "*": (STOCK, "any other aiomysql connect option (unix_socket, client_flag, ...)"),
    },
    "aiosqlite": {
        "database": _DB_NAME,
        "isolation_level": (REFUSED, "peewee-async issues BEGIN itself: always None"),
        "loop": _LOOP,
        "*": (STOCK, "any other aiosqlite/sqlite3 connect option (detect_types, uri, ...)"),
    },
}

#: the database classes' names in the documentation table
_TITLES = {
    "aiopg": "PostgresqlDatabase (aiopg)",
    "psycopg": "Psycopg3Database (psycopg)",
    "aiomysql": "MySQLDatabase (aiomysql)",
    "aiosqlite": "SqliteDatabase (aiosqlite)",
}


def _treatment(driver: str, key: str) -> tuple[str, str]:
    table = STOCK_KEYS[driver]
    return table.get(key, table["*"])


def driver_kwargs(
    driver: str, config: PoolConfig, database: str | None, kwargs: dict[str, Any]
) -> dict[str, Any]:
    """The keys of ``kwargs`` that go to the driver as stock; UnsupportedOptionError
    naming every translated or refused key given (and a database name other than the
    config's)."""
    problems: dict[str, str] = {}
    wanted = config.database_url.database
    if database and wanted and database != wanted and driver != "aiosqlite":
        problems["database"] = (
            f"the database is named {database!r} but the PoolConfig's url names {wanted!r}: "
            "the url decides"
        )
    if database and driver == "aiosqlite" and database not in (wanted, ":memory:"):
        problems["database"] = f"the SQLite file comes from the PoolConfig's url ({wanted!r})"
    passed: dict[str, Any] = {}
    for key, value in kwargs.items():
        how, note = _treatment(driver, key)
        if how == STOCK:
            passed[key] = value
        elif how == TRANSLATED:
            problems[key] = f"set in the PoolConfig instead: {note.replace('`', '')}"
        else:
            problems[key] = note.replace("`", "")
    if problems:
        raise UnsupportedOptionError("peewee_async", problems)
    return passed


def stock_key_table() -> str:
    """Markdown: one row per stock key, one column per database class."""
    keys: list[str] = []
    for table in STOCK_KEYS.values():
        keys += [k for k in table if k != "*" and k not in keys]
    keys.append("*")
    rows = [
        "| key | " + " | ".join(_TITLES[d] for d in STOCK_KEYS) + " |",
        "|---|" + "---|" * len(STOCK_KEYS),
    ]
    for key in keys:
        cells = []
        for table in STOCK_KEYS.values():
            how, note = table.get(key, table["*"])
            cells.append(f"{how}: {note}" if key in table else f"{how}, as any other key")
        label = "any other key" if key == "*" else f"`{key}`"
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(rows)
