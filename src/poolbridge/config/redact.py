"""Keep secrets out of everything poolbridge prints, by structure and never by value.

This module is the one place that decides what is secret. repr/str of configs, ConfigError
lines, ``config show``, the adapters' ``Translation`` repr, the check report and the
generated docs all go through it.

- A value is secret because of WHERE it sits: the password of a URL's userinfo, or the value
  of a key whose name says so (:func:`is_sensitive_key`: password, passwd, pwd, passphrase,
  passfile, secret, token, api_key, private_key, auth ...), in a URL query, in any mapping at
  any depth, or as a ``name=value`` setting inside libpq ``options``.
- A secret's value is never searched for in other text: a password such as ``postgres`` or
  ``1`` cannot mangle unrelated output, and a copy of the password under a key that does not
  say "secret" is not a secret (it is what the user wrote there).
- A URL is masked from ``://`` up to its LAST ``@`` when the part before that ``@`` is not a
  plain ``user:password`` (an unencoded ``/``, ``?`` or ``#`` in the password makes every
  URL parser split the URL elsewhere), and after ``://`` entirely when that part holds a
  ``=`` (the last ``@`` may then sit in a query value, e.g. ``?sslpassword=a@b``);
  :func:`url_summary` gives scheme and host only, for error lines about a URL that does
  not parse.

:func:`redact_url`, :func:`redact_text`, :func:`redact_mapping` and :class:`RedactingFilter`
are the public helpers (docs/configuration.md, "Passwords").
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote

__all__ = [
    "MASK",
    "RedactingFilter",
    "edit_distance",
    "is_sensitive_key",
    "redact_mapping",
    "redact_options",
    "redact_text",
    "redact_url",
    "url_summary",
]

MASK = "***"

#: substrings of a key name that make its value a secret
_SECRET_WORDS = (
    "pass",  # password, passwd, passphrase, passfile, sslpassword, db_pass ...
    "pwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "api-key",
    "privatekey",
    "private_key",
    "private-key",
)
#: whole key names that make its value a secret
_SECRET_NAMES = frozenset({"pw", "auth", "authorization"})
#: keys whose value is libpq ``options`` (``-c name=value`` settings)
_OPTIONS_KEYS = frozenset({"options"})

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_IN_TEXT_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://(?P<rest>[^\s'\"<>]*)")
_KEY_EQ = r"(?P<key>\b[A-Za-z_][A-Za-z0-9_.\-]*)(?P<eq>\s*=\s*)"
_QUOTED = r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\""
#: ``key=value`` in free text: a value ends at whitespace or '&' (a URL query's separator)
_TEXT_SETTING = re.compile(_KEY_EQ + r"(?P<val>" + _QUOTED + r"|(?:\\.|[^\s&\\])*)")
#: ``-c key=value`` in libpq options: no quoting, a value ends at whitespace not escaped
#: with a backslash
_OPTIONS_SETTING = re.compile(
    r"(?P<key>\b[A-Za-z_][A-Za-z0-9_.\-]*)(?P<eq>=)(?P<val>(?:\\.|[^\s\\])*\\?)"
)


def edit_distance(a: str, b: str) -> int:
    """Optimal string alignment distance (a swap of two neighbours counts 1)."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[len(b)]


def is_sensitive_key(key: object) -> bool:
    """True for keys whose value is a secret: the name says password, passwd, pwd, pass,
    passphrase, passfile, secret, token, api_key, private_key or auth (any case), or is a
    near miss of ``password`` (``pasword``, ``passwort``)."""
    if not isinstance(key, str):
        return False
    name = key.strip().lower()
    return (
        name in _SECRET_NAMES
        or any(word in name for word in _SECRET_WORDS)
        or edit_distance(name, "password") <= 2
    )


def redact_options(text: str) -> str:
    """libpq ``options`` (``-c name=value ...``) with the values of secret-named settings
    masked; other settings stay readable."""
    return _mask_settings(text, _OPTIONS_SETTING)


def _mask_settings(text: str, pattern: re.Pattern[str] = _TEXT_SETTING) -> str:
    def sub(m: re.Match[str]) -> str:
        if is_sensitive_key(m.group("key")) and m.group("val"):
            return m.group("key") + m.group("eq") + MASK
        return m.group(0)

    return pattern.sub(sub, text)


def _redact_query(query: str) -> str:
    """``a=1&password=x`` with secret-named values masked, other pieces kept byte for byte."""
    pieces = []
    after_secret = False
    for piece in query.split("&"):
        raw_key, eq, raw_val = piece.partition("=")
        key = unquote(raw_key.replace("+", " "))
        if not eq and after_secret:
            pieces.append(MASK)  # likely the rest of a secret with an unencoded '&'
            continue
        after_secret = bool(eq) and is_sensitive_key(key)
        if eq and raw_val and is_sensitive_key(key):
            pieces.append(f"{raw_key}={MASK}")
        elif eq and key.strip().lower() in _OPTIONS_KEYS:
            value = unquote(raw_val.replace("+", " "))
            masked = redact_options(value)
            pieces.append(piece if masked == value else f"{raw_key}={quote(masked, safe='=*')}")
        elif not eq and is_sensitive_key(key):
            pieces.append(MASK)  # a bare piece naming a secret: it may be one
        else:
            pieces.append(piece)
    return "&".join(pieces)


def _redact_tail(tail: str) -> str:
    """Host, path and query of a URL: secret-named query values masked."""
    base, sep, rest = tail.partition("?")
    if not sep:  # a database URL has no fragment: after a '#' may be a piece of a secret
        path, hsep, _ = tail.partition("#")
        return path + (hsep + MASK if hsep else "")
    query, hsep, _ = rest.partition("#")
    return base + "?" + _redact_query(query) + (hsep + MASK if hsep else "")


def _netloc_end(rest: str) -> int:
    return min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))


def redact_url(url: object) -> str:
    """``url`` safe to print: the userinfo password and secret-named query values masked.

    ``postgresql://app:s3cret@h/db?sslpassword=x`` gives ``postgresql://app:***@h/db?sslpassword=***``.
    When the part before the last ``@`` is not a plain ``user[:password]`` (an unencoded
    ``/``, ``?``, ``#`` or ``@`` in the password), everything between ``://`` and that ``@``
    is masked. Text without ``://`` is masked up to its last ``@``. Never raises; a
    non-string gives ``***``.
    """
    if not isinstance(url, str):
        return MASK
    scheme, sep, rest = url.partition("://")
    if not sep or not _SCHEME.fullmatch(scheme):
        if "@" in url:
            return MASK + "@" + _redact_tail(url.rpartition("@")[2])
        return _redact_tail(url)
    head = scheme + "://"
    if "@" in rest:
        userinfo, _, tail = rest.rpartition("@")
        if "=" in userinfo:  # the last '@' may sit in a query value: the rest may be secret
            return head + MASK
        if re.search(r"[/?#]", userinfo):  # ambiguous split: mask all of it
            return head + MASK + "@" + _redact_tail(tail)
        user, colon, password = userinfo.partition(":")
        shown = user + (":" + (MASK if password else "") if colon else "")
        return head + shown + "@" + _redact_tail(tail)
    end = _netloc_end(rest)
    netloc, tail = rest[:end], rest[end:]
    host, colon, port = netloc.rpartition(":") if not netloc.endswith("]") else (netloc, "", "")
    if colon and not (port.isascii() and port.isdigit()):
        # "user:secret" without an '@' reads as host:port; a port that is no number may be
        # a password whose '@' is missing
        netloc = host.partition(":")[0] + ":" + MASK
    return head + netloc + _redact_tail(tail)


def url_summary(url: object) -> str:
    """Scheme and host of a URL at most (``postgresql://***@db.internal``), for error lines
    about a URL that does not parse: nothing else of it is shown. Text without a scheme
    gives ``<text without scheme>``: it may be a password pasted in the wrong place."""
    if not isinstance(url, str):
        return f"<{type(url).__name__}>"
    scheme, sep, rest = url.partition("://")
    if not sep or not _SCHEME.fullmatch(scheme):
        return "<text without scheme>"
    at = "@" in rest
    if at and "=" in rest.rpartition("@")[0]:
        return f"{scheme}://{MASK}"  # the last '@' may sit in a query value: no host known
    after = rest.rpartition("@")[2] if at else rest
    hostport = after[: _netloc_end(after)]
    if hostport.startswith("["):
        host = hostport[: hostport.find("]") + 1] if "]" in hostport else "[...]"
    else:
        host = hostport.partition(":")[0]
    if re.search(r"[^A-Za-z0-9.\-_%\[\]:]", host):
        host = "..."
    return f"{scheme}://" + (MASK + "@" if at else "") + host


def redact_text(text: str) -> str:
    """Free text (a log line, a driver message) with URL passwords and the values of
    secret-named ``key=value`` settings (libpq conninfo, options) masked."""
    if not isinstance(text, str):
        return MASK
    out = _IN_TEXT_URL.sub(lambda m: redact_url(m.group(0)), text)
    return _mask_settings(out)


def _redact_value(key: Any, value: Any) -> Any:
    if isinstance(value, str):
        if isinstance(key, str) and key.strip().lower() in _OPTIONS_KEYS:
            return redact_options(value)
        return redact_text(value)
    if isinstance(value, Mapping):
        return redact_mapping(value)
    if isinstance(value, list | tuple | set | frozenset):
        items = [_redact_value(None, v) for v in value]
        return items if isinstance(value, list) else type(value)(items)
    return value


def redact_mapping(data: Mapping[Any, Any]) -> dict[Any, Any]:
    """A copy of ``data`` safe to print: values under secret-named keys masked at any depth,
    URLs and ``password=...`` settings inside string values masked.

    A secret-named key holding a mapping (Tortoise's ``credentials``) is walked, not masked,
    so the non-secret parts stay visible. Callables under secret-named keys (password
    providers) are masked too; an empty or None value is shown as it is. The input is not
    modified.
    """
    out: dict[Any, Any] = {}
    for key, value in data.items():
        if is_sensitive_key(key) and not isinstance(value, Mapping):
            out[key] = MASK if value not in (None, "") else value
        else:
            out[key] = _redact_value(key, value)
    return out


class RedactingFilter(logging.Filter):
    """A logging filter masking URL passwords and secret-named ``key=value`` settings.

    For loggers poolbridge does not control (an ORM that logs its conninfo at DEBUG):
    ``logging.getLogger("tortoise").addFilter(RedactingFilter())``. Masking is by structure
    (:func:`redact_text`): a password the foreign text shows without a key or URL around it
    cannot be recognised, so adapters keep secrets out of such loggers at the source. The
    record is rewritten in place (message formatted once, args cleared) only when something
    was masked.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is logging's problem, not ours
            return True
        masked = redact_text(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True
