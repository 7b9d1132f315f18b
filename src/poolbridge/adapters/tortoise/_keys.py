"""Tortoise's own connection keys: what each one means stock, and what poolbridge does with it.

A Tortoise connection is configured by a ``credentials`` dict (or a URL whose query becomes
that dict). With poolbridge the same keys come from the PoolConfig's URL query and its
``driver_options``; each key Tortoise gives a meaning to keeps that meaning here:

- **stock**: handed to Tortoise's own client code in the credentials, which does what it
  does stock (and, under poolbridge's engine, the engine's connections get it too);
- **translated**: a PoolConfig field or a URL part says the same thing, or the engine
  gets the setting Tortoise would have made (e.g. ``schema`` -> ``search_path``);
- **refused**: an ``UnsupportedOptionError`` naming the key (a pool knob PoolConfig owns,
  or something the stack cannot keep).

Keys Tortoise gives no meaning follow poolbridge's URL rule (they go to the driver). The
table is pure data: docs/adapters/tortoise.md prints it (:func:`keys_doc_table`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

from poolbridge.config.durations import parse_bool
from poolbridge.config.model import PoolConfig

__all__ = [
    "FAMILIES",
    "KEYS",
    "KeyRule",
    "family_of",
    "keys_doc_table",
    "refused_keys",
    "tortoise_keys",
    "url_without",
]

How = Literal["stock", "translated", "refused"]


@dataclass(frozen=True)
class KeyRule:
    """One credential key of one Tortoise backend.

    ``how``: stock / translated / refused; ``meaning``: what it does (or why it is refused);
    ``to_driver``: under poolbridge's engine, the value is also a keyword of the driver's
    connect; ``cast``: how Tortoise's URL parser types the text of a URL query value.
    """

    how: How
    meaning: str
    to_driver: bool = False
    cast: Callable[[str], Any] | None = None
    #: a URL part or a PoolConfig field: never read from a query or driver_options
    structural: bool = False


def _stock(
    meaning: str, *, to_driver: bool = False, cast: Callable[[str], Any] | None = None
) -> KeyRule:
    return KeyRule("stock", meaning, to_driver=to_driver, cast=cast)


def _translated(meaning: str, *, structural: bool = False) -> KeyRule:
    return KeyRule("translated", meaning, structural=structural)


def _refused(why: str) -> KeyRule:
    return KeyRule("refused", why)


_URL = {
    "host": _translated("the URL's host", structural=True),
    "port": _translated("the URL's port", structural=True),
    "user": _translated("the URL's user name", structural=True),
    "password": _translated(
        "the URL's password or PoolConfig password (a provider: never in Tortoise's logs)",
        structural=True,
    ),
    "database": _translated("the URL's database", structural=True),
}
_POOL = "a pool knob: PoolConfig sets it"
_TORTOISE = {
    "fetch_inserted": _stock("Tortoise client option (read inserted rows back)", cast=parse_bool),
    "connection_name": _stock("set by Tortoise itself from the connection's name"),
}
_PG = {
    **_URL,
    "minsize": _refused(f"{_POOL} (min_size)"),
    "maxsize": _refused(f"{_POOL} (max_size)"),
    "min_size": _refused(f"{_POOL} (min_size)"),
    "max_size": _refused(f"{_POOL} (max_size)"),
    "schema": _translated(
        "search_path of every connection, as Tortoise sets it (an explicit "
        "session['search_path'] wins)"
    ),
    "application_name": _translated(
        "application_name of every connection; given in driver_options it wins over "
        "session['application_name'], given in the URL query session wins (the rule of "
        "every PostgreSQL stack); the pool name is only the default"
    ),
    "server_settings": _translated(
        "session settings of every connection, as Tortoise sends them (explicit session "
        "entries win, but its application_name wins over session's; a statement_timeout / "
        "default_transaction_isolation disagreeing with the knob is refused)"
    ),
    "loop": _refused("a poolbridge pool belongs to the event loop it was opened in"),
    **_TORTOISE,
}
ASYNCPG: dict[str, KeyRule] = {
    **_PG,
    "ssl": _translated("PoolConfig ssl (True: asyncpg's verify-full, as stock)", structural=True),
    "timeout": _refused("asyncpg's connect timeout: PoolConfig connect_timeout sets it"),
    "max_queries": _refused(
        "asyncpg's pool option; poolbridge's engine replaces that pool (max_lifetime "
        "recycles by age)"
    ),
    "max_inactive_connection_lifetime": _refused(f"{_POOL} (max_idle)"),
    "setup": _refused("asyncpg's pool callback: use Hooks(on_checkout=)"),
    "init": _refused("asyncpg's pool callback: use Hooks(on_connect=)"),
    "reset": _refused("asyncpg's pool callback: PoolConfig reset sets it"),
    "connect": _refused("asyncpg's pool callback: poolbridge's engine connects"),
    "connection_class": _stock("asyncpg connect: connection class", to_driver=True),
    "record_class": _stock("asyncpg connect: record class", to_driver=True),
    "statement_cache_size": _stock("asyncpg connect", to_driver=True, cast=int),
    "max_cached_statement_lifetime": _stock("asyncpg connect", to_driver=True, cast=int),
    "max_cacheable_statement_size": _stock("asyncpg connect", to_driver=True, cast=int),
    "command_timeout": _stock("asyncpg connect", to_driver=True, cast=float),
    "direct_tls": _stock("asyncpg connect", to_driver=True, cast=parse_bool),
}
PSYCOPG: dict[str, KeyRule] = {
    **_PG,
    "schema": _stock("libpq options -c search_path, as Tortoise's psycopg client sets it"),
    "application_name": _stock(
        "libpq application_name, as Tortoise's psycopg client sets it; given in "
        "driver_options it wins over session['application_name'], given in the URL query "
        "session wins; the pool name is only the default"
    ),
    "server_settings": _stock(
        "libpq connection parameters, as Tortoise's psycopg client passes them (its "
        "`options` entry is overwritten by Tortoise's client, as stock: poolbridge warns; "
        "give libpq options in driver_options `options` or the URL's `?options=`)"
    ),
    "ssl": _translated(
        "PoolConfig ssl: a mode name becomes sslmode; True and an SSLContext reach Tortoise's "
        "psycopg client, which makes them sslmode=require (True, or a context without "
        "check_hostname) or verify-full and drops the context itself (its CA and "
        "certificates: poolbridge warns with UnsupportedOptionWarning)",
        structural=True,
    ),
    "timeout": _refused("psycopg_pool's acquire timeout: PoolConfig acquire_timeout sets it"),
    "max_lifetime": _refused(f"{_POOL} (max_lifetime)"),
    "max_idle": _refused(f"{_POOL} (max_idle)"),
    "max_waiting": _refused(f"{_POOL} (max_waiting)"),
    "reconnect_timeout": _refused(f"{_POOL} (acquire_timeout bounds reconnects)"),
    "check": _refused(f"{_POOL} (pre_ping; unset it checks as Tortoise does)"),
    "configure": _refused("psycopg_pool callback: use Hooks(on_connect=)"),
    "reset": _refused("psycopg_pool callback: PoolConfig reset sets it"),
    "open": _refused("poolbridge opens the pool at init()"),
    "kwargs": _refused("psycopg connect keywords: put them in driver_options"),
    "max_queries": _refused("asyncpg-only: psycopg_pool rejects it, with Tortoise alone too"),
    "max_inactive_connection_lifetime": _refused(f"{_POOL} (max_idle)"),
    "num_workers": _stock("psycopg_pool option"),
    "reconnect_failed": _stock("psycopg_pool option"),
    "name": _stock("psycopg_pool option (default: the pool name)"),
}
MYSQL: dict[str, KeyRule] = {
    **_URL,
    "minsize": _refused(f"{_POOL} (min_size)"),
    "maxsize": _refused(f"{_POOL} (max_size)"),
    "pool_recycle": _refused(f"{_POOL} (max_idle, max_lifetime)"),
    "connect_timeout": _translated("PoolConfig connect_timeout", structural=True),
    "ssl": _translated(
        "PoolConfig ssl: True and an SSLContext reach the driver as they are (its stock "
        "meaning); a mode name becomes an SSLContext",
        structural=True,
    ),
    "charset": _stock(
        "connection charset (default utf8mb4); an unknown one fails at init with "
        "DBConnectionError, as stock",
        to_driver=True,
    ),
    "sql_mode": _stock("session sql_mode (default STRICT_TRANS_TABLES)", to_driver=True),
    "storage_engine": _stock(
        "default_storage_engine (on every connection; a non-InnoDB engine turns "
        "transactions off, as stock)"
    ),
    "autocommit": _stock("ignored, as stock: Tortoise always runs in autocommit"),
    "db": _stock("ignored, as stock: the URL's database is used"),
    "echo": _stock("driver connect", to_driver=True, cast=parse_bool),
    "use_unicode": _stock("driver connect", to_driver=True, cast=parse_bool),
    **_TORTOISE,
}
SQLITE: dict[str, KeyRule] = {
    "file_path": _translated("the URL's path", structural=True),
    "journal_mode": _stock("PRAGMA on every connection (default WAL)"),
    "journal_size_limit": _stock("PRAGMA on every connection (default 16384)"),
    "foreign_keys": _stock("PRAGMA on every connection (default ON)"),
    "install_regexp_functions": _stock(
        "REGEXP functions on every connection and the client with REGEXP support",
        cast=parse_bool,
    ),
    "(any other key)": _stock("PRAGMA on every connection, as stock"),
    **_TORTOISE,
}
#: backend family -> key -> rule
KEYS: dict[str, dict[str, KeyRule]] = {
    "asyncpg": ASYNCPG,
    "psycopg": PSYCOPG,
    "mysql": MYSQL,
    "sqlite": SQLITE,
}
FAMILIES: dict[str, str] = {
    "asyncpg": "asyncpg",
    "psycopg": "psycopg",
    "asyncmy": "mysql",
    "aiomysql": "mysql",
    "aiosqlite": "sqlite",
}
#: driver keys of the MySQL connect that never reach it under Tortoise (it sets them itself)
MYSQL_NOT_TO_DRIVER = frozenset({"storage_engine", "autocommit", "db", "fetch_inserted",
                                 "connection_name"})  # fmt: skip


def family_of(driver: str) -> str:
    return FAMILIES[driver]


def _rule(family: str, key: str) -> KeyRule | None:
    rules = KEYS[family]
    rule = rules.get(key)
    if rule is None and family == "sqlite":
        return rules["(any other key)"]
    return rule


def _cast(rule: KeyRule, value: Any) -> Any:
    if rule.cast is None or not isinstance(value, str):
        return value
    try:
        return rule.cast(value)
    except ValueError:
        return value  # as Tortoise would pass it: the driver says what is wrong


def tortoise_keys(config: PoolConfig, driver: str) -> dict[str, Any]:
    """The Tortoise keys the config carries (URL query, then driver_options), typed as
    Tortoise's URL parser types them. MySQL: every driver key (Tortoise passes every
    extra credential to the driver's connect)."""
    family = family_of(driver)
    out: dict[str, Any] = {}
    sources: list[Mapping[str, Any]] = [config.database_url.query]
    if family != "sqlite":  # SQLite driver_options are aiosqlite.connect's keywords
        sources.append(config.driver_options)
    for source in sources:
        for key, value in source.items():
            rule = _rule(family, key)
            if rule is None:
                if family == "mysql":
                    out[key] = value
                continue
            if not rule.structural:
                out[key] = _cast(rule, value)
    return out


def refused_keys(config: PoolConfig, driver: str) -> dict[str, str]:
    """``{"<key> (Tortoise key)": why}`` for each refused key the config carries."""
    family = family_of(driver)
    out: dict[str, str] = {}
    for key, value in tortoise_keys(config, driver).items():
        rule = _rule(family, key)
        if rule is not None and rule.how == "refused":
            out[f"{key} (Tortoise key)"] = rule.meaning
        elif key == "server_settings" and not isinstance(value, Mapping):
            out[f"{key} (Tortoise key)"] = "must be a mapping of setting names to values"
    return out


def url_without(url: str, keys: set[str]) -> str:
    """``url`` without the query keys ``keys`` (the rest of the URL untouched)."""
    base, sep, query = url.partition("?")
    if not sep:
        return url
    kept = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k not in keys]
    return f"{base}?{urlencode(kept)}" if kept else base


def keys_doc_table() -> str:
    """One table per backend family: every stock key, how poolbridge treats it."""
    titles = {"asyncpg": "asyncpg", "psycopg": "psycopg", "mysql": "MySQL (asyncmy, aiomysql)",
              "sqlite": "SQLite"}  # fmt: skip
    parts: list[str] = []
    for family, rules in KEYS.items():
        parts += [f"**{titles[family]}**", "", "| key | poolbridge | meaning |", "|---|---|---|"]
        for key, rule in rules.items():
            how = {"stock": "honoured as stock", "translated": "translated",
                   "refused": "**refused**"}[rule.how]  # fmt: skip
            parts.append(f"| `{key}` | {how} | {rule.meaning} |")
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"
