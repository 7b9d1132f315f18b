"""Field-by-field checks of a PoolConfig: normalise a raw value or say which rule it broke.

Each checker takes the raw value (from code, a dict, TOML, the environment or a URL query)
and returns the normalised value, or raises ``ValueError(rule)``; :func:`check_fields` turns
those into ConfigError lines ``<field> <rule> (got <value>)``. Kept apart from config.py so
the dataclass reads as the list of fields and this module as the list of rules.
"""

from __future__ import annotations

import contextlib
import json
import re
import ssl as _ssl
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from poolbridge.config.durations import is_none_word, parse_bool, parse_duration, parse_int
from poolbridge.config.redact import redact_mapping, redact_url

__all__ = [
    "BACKENDS",
    "DRIVERS",
    "ISOLATION_LEVELS",
    "RESETS",
    "SSL_MODES",
    "check_fields",
    "parse_mapping",
    "parse_url_scheme",
    "show",
    "split_url_options",
]

#: URL scheme (before ``+driver``) -> backend
BACKENDS: dict[str, str] = {
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
    "sqlite": "sqlite",
}
#: backend -> drivers poolbridge knows (adapters support a subset each)
DRIVERS: dict[str, tuple[str, ...]] = {
    "postgresql": ("asyncpg", "psycopg", "aiopg"),
    "mysql": ("aiomysql", "asyncmy"),
    "sqlite": ("aiosqlite",),
}
RESETS: tuple[str, ...] = ("rollback", "full")
ISOLATION_LEVELS: tuple[str, ...] = ("read_committed", "repeatable_read", "serializable")
SSL_MODES: tuple[str, ...] = ("disable", "require", "verify-ca", "verify-full")
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_ALL_DRIVERS = tuple(d for ds in DRIVERS.values() for d in ds)


def show(value: object, field: str = "") -> str:
    """The value as quoted in an error line; secrets never shown."""
    if field == "password" or field.endswith(".password"):
        return type(value).__name__
    if field == "url" and isinstance(value, str):
        return repr(redact_url(value))
    if field == "driver_options" and not isinstance(value, Mapping):
        return type(value).__name__  # may hold anything, credentials included
    if isinstance(value, Mapping):
        value = redact_mapping(value)
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def parse_url_scheme(url: str) -> tuple[str, str | None]:
    """(backend, driver or None) of a URL; ValueError naming the known schemes."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    base, _, drv = scheme.partition("+")
    if base not in BACKENDS:
        known = ", ".join(f"{s}://" for s in BACKENDS)
        raise ValueError(f"must start with a known scheme ({known}, optionally +driver)")
    return BACKENDS[base], drv or None


def split_url_options(url: str, names: frozenset[str]) -> tuple[str, dict[str, str]]:
    """Take the query keys listed in ``names`` out of ``url``.

    Returns the URL without them (other query pieces kept byte for byte, for the driver)
    and the taken options as strings. Without any pool option the URL is returned as is.
    """
    base, sep, rest = url.partition("?")
    if not sep:
        return url, {}
    query, hsep, fragment = rest.partition("#")
    kept: list[str] = []
    taken: dict[str, str] = {}
    for piece in query.split("&"):
        raw_key, _, raw_val = piece.partition("=")
        key = unquote(raw_key.replace("+", " "))
        if key in names:
            taken[key] = unquote(raw_val.replace("+", " "))
        else:
            kept.append(piece)
    if not taken:
        return url, {}
    new_query = "&".join(p for p in kept if p)
    return base + ("?" + new_query if new_query else "") + (hsep + fragment), taken


# -- single-field checkers ---------------------------------------------------------------


def _optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def inner(value: Any) -> Any:
        if value is None or is_none_word(value):
            return None
        try:
            return check(value)
        except ValueError as exc:
            raise ValueError(f"{exc} or None") from None

    return inner


def _positive_duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError("must be > 0")
    return seconds


def _int_at_least(low: int) -> Callable[[Any], int]:
    def inner(value: Any) -> int:
        n = parse_int(value)
        if n < low:
            raise ValueError(f"must be >= {low}")
        return n

    return inner


def _choice(choices: tuple[str, ...], sep: str) -> Callable[[Any], str]:
    def inner(value: Any) -> str:
        word = (
            value.strip().lower().replace(" ", sep).replace("-", sep).replace("_", sep)
            if (isinstance(value, str))
            else None
        )
        if word not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return word

    return inner


def _url(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty database URL string")
    backend, driver = parse_url_scheme(value)
    if driver is not None and driver not in DRIVERS[backend]:
        raise ValueError(
            f"names driver {driver!r}, unknown for {backend} (known: {', '.join(DRIVERS[backend])})"
        )
    if backend != "sqlite":
        try:
            urlsplit(value).port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise ValueError("has an invalid port") from None
    return value


def _driver(value: Any) -> str | None:
    if value is None or is_none_word(value):
        return None
    if not isinstance(value, str) or value.strip().lower() not in _ALL_DRIVERS:
        raise ValueError(f"must be one of {', '.join(_ALL_DRIVERS)} or None")
    return value.strip().lower()


def parse_mapping(value: Any) -> Mapping[Any, Any]:
    """A mapping, or a JSON object given as text (environment variables, URL query)."""
    if isinstance(value, str):  # environment / URL: a JSON object
        try:
            value = json.loads(value) if value.strip() else {}
        except ValueError:
            raise ValueError("must be a mapping (or a JSON object in text sources)") from None
    if not isinstance(value, Mapping):
        raise ValueError("must be a mapping (or a JSON object in text sources)")
    return value


def _session(value: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, val in parse_mapping(value).items():
        if not isinstance(key, str) or not _SETTING_NAME.match(key):
            raise ValueError(f"keys must be setting names (letters, digits, _ and .), not {key!r}")
        if isinstance(val, bool) or not isinstance(val, str | int | float):
            raise ValueError(f"values must be strings (got {key}={val!r})")
        out[key] = str(val)
    return out


def _driver_options(value: Any) -> dict[str, Any]:
    mapping = parse_mapping(value)
    bad = [k for k in mapping if not isinstance(k, str)]
    if bad:
        raise ValueError(f"keys must be strings (got {bad[0]!r})")
    return dict(mapping)  # shallow: values reach the driver untouched


def _ssl_value(value: Any) -> bool | str | _ssl.SSLContext | None:
    # True is kept as such: each stack gives it its own stock meaning (asyncpg: verify-full);
    # False means no TLS, the same as "disable"
    if value is None or value is True or isinstance(value, _ssl.SSLContext):
        return value
    if value is False:
        return "disable"
    if is_none_word(value):
        return None
    rule = f"must be None, one of {', '.join(SSL_MODES)}, true, or an ssl.SSLContext"
    if not isinstance(value, str):
        raise ValueError(rule)
    mode = value.strip().lower().replace("_", "-")
    if mode in SSL_MODES:
        return mode
    with contextlib.suppress(ValueError):
        return _ssl_value(parse_bool(mode))
    raise ValueError(rule)


def _optional_bool(value: Any) -> bool | None:
    """None (unset: as the stack does stock), or a bool; "off" is False here, not None."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
        return None
    return parse_bool(value)


def _password(value: Any) -> Any:
    if value is None or isinstance(value, str) or callable(value):
        return value
    raise ValueError("must be a string or a (sync or async) callable returning one")


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value


CHECKS: dict[str, Callable[[Any], Any]] = {
    "url": _url,
    "driver": _driver,
    "min_size": _int_at_least(0),
    "max_size": _int_at_least(1),
    "acquire_timeout": _positive_duration,
    "connect_timeout": _positive_duration,
    "statement_timeout": _optional(_positive_duration),
    "max_lifetime": _optional(_positive_duration),
    "max_idle": _optional(_positive_duration),
    "pre_ping": _optional_bool,
    "max_waiting": _int_at_least(0),
    "reset": _choice(RESETS, "_"),
    "statement_cache": parse_bool,
    "isolation_level": _optional(_choice(ISOLATION_LEVELS, "_")),
    "session": _session,
    "ssl": _ssl_value,
    "password": _password,
    "driver_options": _driver_options,
    "leak_timeout": _optional(_positive_duration),
    "name": _name,
}

RETRY_CHECKS: dict[str, Callable[[Any], Any]] = {
    "attempts": _int_at_least(1),
    "initial_backoff": lambda v: _non_negative_duration(v),
    "max_backoff": lambda v: _non_negative_duration(v),
    "jitter": lambda v: _fraction(v),
}


def _non_negative_duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds < 0:
        raise ValueError("must be >= 0")
    return seconds


def _fraction(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("must be a number between 0 and 1")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError("must be a number between 0 and 1") from None
    if not 0.0 <= x <= 1.0:  # also refuses NaN
        raise ValueError("must be between 0 and 1")
    return x


def check_fields(
    values: Mapping[str, Any],
    checks: Mapping[str, Callable[[Any], Any]],
    problems: list[str],
    *,
    prefix: str = "",
) -> dict[str, Any]:
    """Run ``checks`` over ``values``; append one line per broken rule to ``problems``."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        check = checks.get(name)
        if check is None:
            out[name] = value
            continue
        try:
            out[name] = check(value)
        except ValueError as exc:
            problems.append(f"{prefix}{name} {exc} (got {show(value, name)})")
        except Exception as exc:  # a weird object whose own methods fail: still a config error
            problems.append(f"{prefix}{name} is not usable (got {type(value).__name__}: {exc!r})")
    return out
