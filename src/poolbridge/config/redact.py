"""Keep passwords out of everything poolbridge prints.

- :func:`redact_url` masks the password in a URL's userinfo and in sensitive query keys
  (``postgresql://app:***@host/db``).
- :func:`redact_text` masks ``password=...`` in libpq conninfo strings and URLs inside text.
- :func:`redact_mapping` deep-copies a mapping (e.g. an adapter's native kwargs, a Tortoise
  config dict) masking values under sensitive keys and URLs/conninfo in string values.

Each also accepts ``secrets``: known secret strings (e.g. the resolved password) replaced
wherever they appear. Secrets shorter than 3 characters are ignored there (they would mangle
unrelated text); sensitive keys are masked whatever the length.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote

__all__ = [
    "MASK",
    "RedactingFilter",
    "is_sensitive_key",
    "redact_mapping",
    "redact_text",
    "redact_url",
]

MASK = "***"

_SENSITIVE_KEY = re.compile(
    r"pass(word|wd)?$|^pwd$|secret|token|api_?key|private_?key|^auth$|sslpassword", re.IGNORECASE
)
# scheme://user:password@  (password up to the LAST '@' before the path, like urlsplit)
_URL_USERINFO = re.compile(r"(?P<pre>[A-Za-z][A-Za-z0-9+.\-]*://[^:/?#@\s]*:)(?P<pw>[^/?#\s]*)@")
_CONNINFO_PW = re.compile(
    r"(?P<key>\b(?:password|passwd|pwd|sslpassword)\s*=\s*)(?P<val>'(?:[^'\\]|\\.)*'|[^\s&;]*)",
    re.IGNORECASE,
)


def is_sensitive_key(key: object) -> bool:
    """True for keys whose value is a secret (password, passwd, pwd, secret, token, api_key ...)."""
    return isinstance(key, str) and _SENSITIVE_KEY.search(key) is not None


def _mask_secrets(text: str, secrets: Iterable[str] | None) -> str:
    for secret in secrets or ():
        if secret and len(secret) >= 3 and secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_url(url: str, *, secrets: Iterable[str] | None = None) -> str:
    """``url`` with the userinfo password and sensitive query values replaced by ``***``.

    Works on strings that do not parse as URLs too (they are returned with known secrets
    masked), so it is safe to call on anything the user typed.
    """
    if not isinstance(url, str):
        return MASK
    out = _URL_USERINFO.sub(
        lambda m: m.group("pre") + (MASK if m.group("pw") else "") + "@", url, count=1
    )
    if not _URL_USERINFO.search(url) and "://" in url:
        # a '@' inside an unencoded password defeats the regex: fall back to rpartition
        scheme, _, rest = url.partition("://")
        netloc_end = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
        netloc = rest[:netloc_end]
        if "@" in netloc:
            userinfo, _, hostport = netloc.rpartition("@")
            if ":" in userinfo:
                user = userinfo.split(":", 1)[0]
                out = f"{scheme}://{user}:{MASK}@{hostport}{rest[netloc_end:]}"
    base, sep, query = out.partition("?")
    if sep:
        parts = []
        for piece in query.split("&"):
            key = unquote(piece.split("=", 1)[0])
            parts.append(f"{piece.split('=', 1)[0]}={MASK}" if is_sensitive_key(key) else piece)
        out = base + "?" + "&".join(parts)
    return _mask_secrets(out, secrets)


def redact_text(text: str, *, secrets: Iterable[str] | None = None) -> str:
    """Mask URL passwords and ``password=...`` (libpq conninfo) inside free text."""
    out = _URL_USERINFO.sub(lambda m: m.group("pre") + MASK + "@", text)
    out = _CONNINFO_PW.sub(lambda m: m.group("key") + MASK, out)
    return _mask_secrets(out, secrets)


def _redact_value(value: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        if "://" in value and "?" in value:
            value = redact_url(value, secrets=secrets)
        return redact_text(value, secrets=secrets)
    if isinstance(value, Mapping):
        return redact_mapping(value, secrets=secrets)
    if isinstance(value, list | tuple | set | frozenset):
        items = [_redact_value(v, secrets) for v in value]
        return items if isinstance(value, list) else type(value)(items)
    return value


def redact_mapping(
    data: Mapping[Any, Any], *, secrets: Iterable[str] | None = None
) -> dict[Any, Any]:
    """A copy of ``data`` safe to print: sensitive keys masked, nested containers walked.

    A sensitive key holding a mapping (e.g. Tortoise's ``credentials``) is walked, not
    masked, so the non-secret parts stay visible. Callables under sensitive keys (password
    providers) are masked too. Values that are not secrets are returned as they are.
    """
    known = tuple(s for s in (secrets or ()) if isinstance(s, str))
    out: dict[Any, Any] = {}
    for key, value in data.items():
        if is_sensitive_key(key) and not isinstance(value, Mapping):
            out[key] = MASK if value not in (None, "") else value
        else:
            out[key] = _redact_value(value, known)
    return out


class RedactingFilter(logging.Filter):
    """A logging filter that masks URL passwords, ``password=...`` and known secrets.

    For loggers poolbridge does not control (e.g. an ORM that logs its conninfo at DEBUG):
    ``logging.getLogger("tortoise").addFilter(RedactingFilter(config.secrets()))``. The
    record is rewritten in place (message formatted once, args cleared) only when something
    was masked.
    """

    def __init__(self, secrets: Iterable[str] = (), name: str = "") -> None:
        super().__init__(name)
        self.secrets = tuple(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is logging's problem, not ours
            return True
        masked = redact_text(message, secrets=self.secrets)
        if masked != message:
            record.msg, record.args = masked, None
        return True
