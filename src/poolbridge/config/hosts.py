"""The high-availability fields of a PoolConfig: several hosts and which of them to use.

- ``hosts``: ``host:port`` entries tried in order (``[::1]:5432`` for IPv6; an entry without
  a port takes the URL's port, else the driver's default). Given as a list, a tuple or one
  comma-separated string (environment variables), or inside the URL in either of the two
  forms drivers know: libpq's ``postgresql://h1:5432,h2:5433/db`` and SQLAlchemy's
  ``postgresql://user@/db?host=h1:5432&host=h2:5433`` (a repeated ``host`` key: the only
  query key the strict URL rules allow more than once, and only in this form).
  :func:`split_url_hosts` takes them out of the URL, which then names the first host only.
- ``target_session_attrs``: libpq's six values: ``any``, ``read-write`` (a session that
  accepts writes), ``read-only`` (one that refuses them), ``primary`` (a server not in
  recovery), ``standby`` (one in recovery), ``prefer-standby`` (a standby when one is
  reachable, else any).
- ``load_balance_hosts``: ``disable`` (in order) or ``random`` (shuffled per connect).
- ``host_recheck_interval``: seconds after which a connection that fell back to a less
  preferred host is retired, so that the next connect tries the preferred hosts again.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "LOAD_BALANCE",
    "MAX_HOSTS",
    "TARGET_SESSION_ATTRS",
    "check_hosts",
    "parse_host",
    "split_url_hosts",
]

TARGET_SESSION_ATTRS: tuple[str, ...] = (
    "any",
    "read-write",
    "read-only",
    "primary",
    "standby",
    "prefer-standby",
)
LOAD_BALANCE: tuple[str, ...] = ("disable", "random")
#: upper bound of the number of hosts (each costs up to connect_timeout per connect)
MAX_HOSTS = 64

_NAME = re.compile(r"[A-Za-z0-9_.\-]+|\[[0-9A-Fa-f:.]+\]")
_PORT = re.compile(r"[0-9]{1,5}")


def parse_host(entry: str) -> tuple[str, int | None]:
    """``"h1:5432"`` -> ``("h1", 5432)``; ``"[::1]:5432"`` -> ``("::1", 5432)``; the port is
    None when the entry has none. ValueError naming the rule otherwise."""
    text = entry.strip()
    if "@" in text:  # the part before it may be a password: never echoed
        raise ValueError("entries are host[:port] only: user and password belong in the URL")
    if text.startswith("["):
        name, close, rest = text.partition("]")
        name += close
        port = rest[1:] if rest.startswith(":") else None
        if rest and port is None:
            raise ValueError(f"entry {entry!r} has text after ']' that is not a :port")
    else:
        name, colon, port_text = text.partition(":")
        port = port_text if colon else None
    if not name or not _NAME.fullmatch(name):
        raise ValueError(
            f"entry {entry!r} is not host[:port] (a name, an IPv4 address or [IPv6], "
            "with an optional :port)"
        )
    if port is None:
        return name.strip("[]"), None
    if not _PORT.fullmatch(port) or not 1 <= int(port) <= 65535:
        raise ValueError(f"entry {entry!r} has an invalid port: expected 1 to 65535")
    return name.strip("[]"), int(port)


def _entry(host: str, port: int | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return shown if port is None else f"{shown}:{port}"


def check_hosts(value: Any) -> tuple[str, ...]:
    """The ``hosts`` field: a tuple of normalised ``host[:port]`` entries (may be empty)."""
    if value is None:
        return ()
    if isinstance(value, str):
        items: list[Any] = [p for p in value.split(",") if p.strip()]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise ValueError("must be a list of 'host:port' entries (or one comma-separated string)")
    if len(items) > MAX_HOSTS:
        raise ValueError(f"must have at most {MAX_HOSTS} entries")
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"entries must be 'host:port' strings (got {type(item).__name__})")
        out.append(_entry(*parse_host(item)))
    return tuple(out)


def split_url_hosts(url: str) -> tuple[str, tuple[str, ...] | None]:
    """Take several hosts out of a server URL: ``(url naming the first host, hosts)``.

    Recognises libpq's comma list in the authority and a ``host`` query key given more
    than once (each a ``host:port``, not a socket directory). Any other URL is returned as
    is with None. The entries are not checked here: :func:`check_hosts` does that.
    """
    if not isinstance(url, str) or "://" not in url:
        return url, None
    scheme, rest = url.split("://", 1)
    if scheme.split("+", 1)[0].lower() not in ("postgresql", "postgres", "mysql", "mariadb"):
        return url, None
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    netloc, after = rest[:end], rest[end:]
    userinfo, at, hostport = netloc.rpartition("@")
    prefix = f"{scheme}://{userinfo}{at}"
    if "," in hostport:
        hosts = tuple(h.strip() for h in hostport.split(",") if h.strip())
        first = hosts[0] if hosts else ""
        return prefix + first + after, hosts
    path, qsep, query = after.partition("?")
    if not qsep or "#" in query:
        return url, None
    pieces = query.split("&")
    host_values = [p.partition("=")[2] for p in pieces if p.partition("=")[0] == "host"]
    if len(host_values) < 2 or any(v.startswith(("/", "%2F", "%2f")) for v in host_values):
        return url, None
    from urllib.parse import unquote

    hosts = tuple(unquote(v) for v in host_values)
    kept = "&".join(p for p in pieces if p and p.partition("=")[0] != "host")
    new_hostport = hostport or hosts[0]
    return prefix + new_hostport + path + ("?" + kept if kept else ""), hosts
