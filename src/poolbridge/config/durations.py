"""Parsing of the scalar values that arrive as text (environment, URL query, TOML, kwargs).

Every parser takes the raw value and returns the normalised Python value or raises
``ValueError`` whose message is the *rule* (``"must be a duration ..."``); the caller adds the
field name and the value, so messages stay uniform: ``acquire_timeout must be ... (got 'x')``.

Durations are seconds as ``float``: a number, or a string ``"500ms"``, ``"30s"``, ``"1.5s"``,
``"5m"``, ``"1h"`` (no unit = seconds). ``NONE_WORDS`` (``""``, ``"none"``, ``"null"``,
``"off"``) mean ``None`` for the fields that allow it.
"""

from __future__ import annotations

import math
import re

__all__ = [
    "NONE_WORDS",
    "format_duration",
    "is_none_word",
    "parse_bool",
    "parse_duration",
    "parse_int",
]

NONE_WORDS: frozenset[str] = frozenset({"", "none", "null", "off"})

_UNITS: dict[str, float] = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
# ASCII digits and spaces only: "١٢" (Arabic-Indic digits) or a trailing newline is refused,
# not read as 12 or stripped
_DURATION_RE = re.compile(
    r"[ ]*([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))[ ]*(ms|s|m|h)?[ ]*", re.IGNORECASE
)
_INT_RE = re.compile(r"[ ]*[+-]?[0-9]+[ ]*")
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})

DURATION_RULE = 'must be a number of seconds or a string like "500ms", "30s", "5m", "1h"'


def is_none_word(value: object) -> bool:
    """True for the text spellings of ``None``: ``""``, ``none``, ``null``, ``off``."""
    return isinstance(value, str) and value.strip().lower() in NONE_WORDS


def parse_duration(value: object) -> float:
    """Seconds as a finite float from a number or a string with an optional unit."""
    if isinstance(value, bool):
        raise ValueError(DURATION_RULE)
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        m = _DURATION_RE.fullmatch(value)
        if m is None:
            raise ValueError(DURATION_RULE)
        seconds = float(m.group(1)) * _UNITS[(m.group(2) or "s").lower()]
    else:
        raise ValueError(DURATION_RULE)
    if not math.isfinite(seconds):
        raise ValueError("must be a finite number of seconds")
    return seconds


def parse_int(value: object) -> int:
    """An integer from an int or an ASCII decimal string (bools and fractional numbers refused)."""
    if isinstance(value, bool):
        raise ValueError("must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INT_RE.fullmatch(value):
        if len(value) > 1000:  # int() refuses thousands of digits with its own message
            raise ValueError("is too large")
        return int(value)
    raise ValueError("must be an integer")


def parse_bool(value: object) -> bool:
    """A bool from a bool or one of true/false, 1/0, yes/no, on/off (any case)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise ValueError("must be true or false")


def format_duration(seconds: float) -> str:
    """A short human form for display (``0.5`` -> ``"500ms"``, ``30.0`` -> ``"30s"``)."""
    if 0 < seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"
