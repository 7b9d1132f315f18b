"""Field-by-field checks of a PoolConfig: normalise a raw value or say which rule it broke.

Each checker takes the raw value (from code, a dict, TOML, the environment or a URL query)
and returns the normalised value, or raises ``ValueError(rule)``; :func:`check_fields` turns
those into ConfigError lines ``<field> <rule> (got <value>)``. Kept apart from config.py so
the dataclass reads as the list of fields and this module as the list of rules.

Rules every field shares: a string value holds no control character (NUL, newline ...);
counts are at most :data:`MAX_SIZE`, durations at most :data:`MAX_DURATION`, numbers in
text are ASCII. Values in the lines go through :func:`show`, which redacts by structure
(config/redact.py); the URL rules live in config/url_rules.py.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import ssl as _ssl
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote

from poolbridge.config.durations import is_none_word, parse_bool, parse_duration, parse_int
from poolbridge.config.hosts import LOAD_BALANCE, TARGET_SESSION_ATTRS, check_hosts
from poolbridge.config.redact import MASK, is_sensitive_key, redact_mapping, redact_url, url_summary
from poolbridge.config.url_rules import (
    BACKENDS,
    DRIVERS,
    has_control,
    parse_url_scheme,
    query_problems,
    structure_problems,
)

__all__ = [
    "BACKENDS",
    "DRIVERS",
    "ISOLATION_LEVELS",
    "MAX_DURATION",
    "MAX_SIZE",
    "RESETS",
    "SSL_MODES",
    "URL_OPTION_NAMES",
    "FieldProblems",
    "check_fields",
    "parse_mapping",
    "parse_url_scheme",
    "show",
    "split_url_options",
]

RESETS: tuple[str, ...] = ("rollback", "full")
ISOLATION_LEVELS: tuple[str, ...] = ("read_committed", "repeatable_read", "serializable")
SSL_MODES: tuple[str, ...] = ("disable", "require", "verify-ca", "verify-full")
_SETTING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
#: upper bound of every count (min_size, max_size, max_waiting, retry.attempts)
MAX_SIZE = 100_000
#: upper bound of every duration, in seconds (365 days)
MAX_DURATION = 365 * 24 * 3600.0
#: fields whose text is JSON (may span lines); their decoded contents are checked instead
_JSON_FIELDS = frozenset({"session", "driver_options", "retry"})
_ALL_DRIVERS = tuple(d for ds in DRIVERS.values() for d in ds)


def show(value: object, field: str = "") -> str:
    """The value as quoted in an error line; secrets never shown."""
    if field == "password" or field.endswith(".password"):
        return type(value).__name__
    if field == "url":
        # a URL that does not parse is never echoed: where its password ends is unknown
        if isinstance(value, str) and not structure_problems(value):
            return repr(redact_url(value))
        return repr(url_summary(value))
    if field == "hosts" and "@" in str(value):
        return "<hosts with an '@': not shown>"  # a user:password@ pasted into an entry
    if field == "driver_options" and not isinstance(value, Mapping):
        return type(value).__name__  # may hold anything, credentials included
    if isinstance(value, Mapping):
        value = redact_mapping(value)
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def split_url_options(
    url: str, names: frozenset[str], problems: list[str] | None = None
) -> tuple[str, dict[str, str]]:
    """Take the query keys listed in ``names`` out of ``url``.

    Returns the URL without them (other query pieces kept byte for byte, for the driver)
    and the taken options as strings. Without any pool option the URL is returned as is.
    A pool option given twice is a line in ``problems`` (the last value is kept).
    """
    base, sep, rest = url.partition("?")
    if not sep:
        return url, {}
    query, hsep, fragment = rest.partition("#")
    kept: list[str] = []
    taken: dict[str, str] = {}
    repeated: dict[str, int] = {}
    for piece in query.split("&"):
        raw_key, _, raw_val = piece.partition("=")
        key = unquote(raw_key.replace("+", " "))
        if key in names:
            if key in taken:
                repeated[key] = repeated.get(key, 1) + 1
            taken[key] = unquote(raw_val.replace("+", " "))
        else:
            kept.append(piece)
    if problems is not None:
        shown = show(url, "url")
        problems += [
            f"url query key {key!r} is given {n} times: give it once (got {shown})"
            for key, n in repeated.items()
        ]
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


def _duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds > MAX_DURATION:
        raise ValueError(f"must be <= {MAX_DURATION:.0f} seconds (365 days)")
    return seconds


def _positive_duration(value: Any) -> float:
    seconds = _duration(value)
    if seconds <= 0:
        raise ValueError("must be > 0")
    return seconds


def _int_at_least(low: int) -> Callable[[Any], int]:
    def inner(value: Any) -> int:
        n = parse_int(value)
        if n < low:
            raise ValueError(f"must be >= {low}")
        if n > MAX_SIZE:
            raise ValueError(f"must be <= {MAX_SIZE}")
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


class FieldProblems(ValueError):
    """Several broken rules of one field, each a line of the ConfigError."""

    def __init__(self, rules: list[str]) -> None:
        super().__init__("; ".join(rules))
        self.rules = rules


def _url(value: Any) -> str:
    """The URL rules of url_rules.py; the pool options were taken out of the query first."""
    rules = structure_problems(value)
    if not rules:
        rules = query_problems(value, URL_OPTION_NAMES)
    if rules:
        raise FieldProblems(rules)
    return str(value)


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
        if not isinstance(key, str) or not _SETTING_NAME.fullmatch(key):
            raise ValueError(f"keys must be setting names (letters, digits, _ and .), not {key!r}")
        shown = MASK if is_sensitive_key(key) else repr(val)
        if isinstance(val, bool) or not isinstance(val, str | int | float):
            raise ValueError(f"values must be strings (got {key}={shown})")
        if isinstance(val, float) and not math.isfinite(val):
            raise ValueError(f"values must be finite numbers (got {key}={shown})")
        if isinstance(val, str) and has_control(val):
            raise ValueError(f"values must not contain control characters (got {key}={shown})")
        out[key] = str(val)
    return out


def _driver_options(value: Any) -> dict[str, Any]:
    mapping = parse_mapping(value)
    bad = [k for k in mapping if not isinstance(k, str)]
    if bad:
        raise ValueError(f"keys must be strings (got {bad[0]!r})")
    path = _nul_path(mapping, "driver_options", 0)
    if path is not None:
        raise ValueError(f"must not contain NUL characters (found in {path})")
    return dict(mapping)  # shallow: values reach the driver untouched


def _nul_path(value: Any, path: str, depth: int) -> str | None:
    """Where a NUL character sits in strings of nested mappings/lists (no driver takes one)."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if depth > 20:
        return None
    if isinstance(value, Mapping):
        for k, v in value.items():
            found = _nul_path(k, f"{path} key", depth + 1) or _nul_path(v, f"{path}.{k}", depth + 1)
            if found:
                return found
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            found = _nul_path(v, f"{path}[{i}]", depth + 1)
            if found:
                return found
    return None


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
    # 0: fail at once when no connection is free (SQLAlchemy's pool_timeout=0)
    "acquire_timeout": lambda v: _non_negative_duration(v),
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
    "hosts": check_hosts,
    "target_session_attrs": _choice(TARGET_SESSION_ATTRS, "-"),
    "load_balance_hosts": _choice(LOAD_BALANCE, "-"),
    "host_recheck_interval": _optional(_positive_duration),
}

RETRY_CHECKS: dict[str, Callable[[Any], Any]] = {
    "attempts": _int_at_least(1),
    "initial_backoff": lambda v: _non_negative_duration(v),
    "max_backoff": lambda v: _non_negative_duration(v),
    "jitter": lambda v: _fraction(v),
}


#: names taken from a URL query (and from POOLBRIDGE_* variables): fields + retry_<field>
URL_OPTION_NAMES: frozenset[str] = frozenset(
    [n for n in CHECKS if n != "url"] + [f"retry_{n}" for n in RETRY_CHECKS]
)


def _non_negative_duration(value: Any) -> float:
    seconds = _duration(value)
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


def _control_rule(value: str, field: str) -> str:
    if field == "url":
        return structure_problems(value)[0]
    where = ""
    if field != "password":  # the position and code point of a secret are not shown
        ch = next(c for c in value if unicodedata.category(c) == "Cc")
        where = f" (U+{ord(ch):04X})"
    return f"must not contain control characters{where}: a trailing newline is a common cause"


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
        if isinstance(value, str) and name not in _JSON_FIELDS and has_control(value):
            problems.append(
                f"{prefix}{name} {_control_rule(value, name)} (got {show(value, name)})"
            )
            continue
        try:
            out[name] = check(value)
        except FieldProblems as exc:
            problems += [f"{prefix}{name} {rule} (got {show(value, name)})" for rule in exc.rules]
        except ValueError as exc:
            problems.append(f"{prefix}{name} {exc} (got {show(value, name)})")
        except Exception as exc:  # a weird object whose own methods fail: still a config error
            problems.append(f"{prefix}{name} is not usable (got {type(value).__name__}: {exc!r})")
    return out
