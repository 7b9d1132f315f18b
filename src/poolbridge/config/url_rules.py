"""The strict rules of a database URL (docs/errors.md, "Strict URL rules").

Two kinds of problems, both returned as rule texts (the caller adds ``url`` and the value):

- :func:`structure_problems`: the URL does not parse unambiguously (unknown scheme, control
  characters, a malformed percent-escape in the user or password, a bad port, no host, an
  ``@`` after the host, a fragment, a query piece without ``=``). Such a URL is never echoed:
  where its password ends is unknown, so error lines show :func:`~poolbridge.config.redact.
  url_summary` (scheme and host) instead.
- :func:`query_problems`: the URL parses, but a query key is given twice, is a near miss of
  a pool option (``max_sise``) that no driver of the scheme knows, or a value holds a control
  character. Pool options themselves were taken out of the query before these checks run.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

from poolbridge.config.redact import edit_distance, is_sensitive_key

__all__ = [
    "BACKENDS",
    "DRIVERS",
    "DRIVER_OPTIONS",
    "SOCKET_KEYS",
    "has_control",
    "parse_url_scheme",
    "query_problems",
    "structure_problems",
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

#: query keys the drivers of each backend take from a URL. Only consulted for near misses
#: of pool options: any other unknown key still goes to the driver, which judges it.
DRIVER_OPTIONS: dict[str, frozenset[str]] = {
    # libpq connection parameters (psycopg, aiopg, asyncpg's DSN) and psycopg's
    # prepare_threshold; asyncpg sends unknown DSN keys as server settings, and
    # lock_timeout is the one server setting within edit distance 2 of a pool option
    "postgresql": frozenset(
        {
            "host",
            "hostaddr",
            "port",
            "dbname",
            "database",
            "user",
            "password",
            "passfile",
            "require_auth",
            "channel_binding",
            "connect_timeout",
            "client_encoding",
            "options",
            "application_name",
            "fallback_application_name",
            "keepalives",
            "keepalives_idle",
            "keepalives_interval",
            "keepalives_count",
            "tcp_user_timeout",
            "replication",
            "gssencmode",
            "sslmode",
            "requiressl",
            "sslnegotiation",
            "sslcompression",
            "sslcert",
            "sslkey",
            "sslkeylogfile",
            "sslpassword",
            "sslcertmode",
            "sslrootcert",
            "sslcrl",
            "sslcrldir",
            "sslsni",
            "requirepeer",
            "ssl_min_protocol_version",
            "ssl_max_protocol_version",
            "krbsrvname",
            "gsslib",
            "gssdelegation",
            "service",
            "target_session_attrs",
            "load_balance_hosts",
            "prepare_threshold",
            "lock_timeout",
        }
    ),
    # aiomysql.connect and asyncmy.connect keyword arguments
    "mysql": frozenset(
        {
            "host",
            "user",
            "password",
            "db",
            "database",
            "port",
            "unix_socket",
            "sock",
            "charset",
            "sql_mode",
            "read_default_file",
            "conv",
            "use_unicode",
            "client_flag",
            "cursorclass",
            "cursor_cls",
            "init_command",
            "connect_timeout",
            "read_default_group",
            "autocommit",
            "echo",
            "local_infile",
            "ssl",
            "auth_plugin",
            "auth_plugin_map",
            "program_name",
            "server_public_key",
            "max_allowed_packet",
            "read_timeout",
            "binary_prefix",
            "stmt_cache_size",
        }
    ),
    # sqlite3.connect / aiosqlite.connect keyword arguments
    "sqlite": frozenset(
        {
            "timeout",
            "detect_types",
            "isolation_level",
            "check_same_thread",
            "factory",
            "cached_statements",
            "uri",
            "autocommit",
            "iter_chunk_size",
        }
    ),
}
#: query keys that name a socket, so that a server URL may leave its host empty
SOCKET_KEYS: dict[str, str] = {"postgresql": "host", "mysql": "unix_socket"}
_SOCKET_EXAMPLES = {
    "postgresql": "postgresql://app@127.0.0.1/db, or a socket directory: "
    "postgresql:///db?host=/var/run/postgresql",
    "mysql": "mysql://app@127.0.0.1/db, or a socket: mysql:///db?unix_socket=/run/mysqld/mysqld.sock",
}
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_QUERY_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_PORT = re.compile(r"[0-9]{1,5}")
_ENCODE_HINT = "percent-encode '/', '?', '#', '@' and '%' in the user name and password"


def has_control(text: str) -> bool:
    """True if ``text`` holds a control character (NUL, newline, tab, DEL, C1 ...)."""
    return any(unicodedata.category(ch) == "Cc" for ch in text)


def parse_url_scheme(url: str) -> tuple[str, str | None]:
    """(backend, driver or None) of a URL; ValueError naming the known schemes."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    base, _, drv = scheme.partition("+")
    if base not in BACKENDS:
        known = ", ".join(f"{s}://" for s in BACKENDS)
        raise ValueError(f"must start with a known scheme ({known}, optionally +driver)")
    return BACKENDS[base], drv or None


def _decoded_problem(part: str, what: str) -> str | None:
    """Why a percent-encoded URL part is unusable, or None."""
    if _BAD_ESCAPE.search(part):
        return f"has a malformed percent-escape in the {what} (write '%' as %25)"
    try:
        text = unquote(part, errors="strict")
    except UnicodeDecodeError:
        return f"has a {what} that is not UTF-8 once percent-decoded"
    if has_control(text):
        return f"has a control character (such as %00) in the {what}"
    return None


def structure_problems(url: str) -> list[str]:
    """Why ``url`` cannot be parsed unambiguously (empty when it can)."""
    if not isinstance(url, str) or not url.strip():
        return ["must be a non-empty database URL string"]
    if has_control(url):
        return ["contains a control character (NUL, newline, tab ...); a trailing newline "
                "from a file or a shell is a common cause"]  # fmt: skip
    try:
        backend, driver = parse_url_scheme(url)
    except ValueError as exc:
        return [str(exc)]
    problems: list[str] = []
    if driver is not None and driver not in DRIVERS[backend]:
        known = ", ".join(DRIVERS[backend])
        problems.append(f"names driver {driver!r}, unknown for {backend} (known: {known})")
    rest = url.split("://", 1)[1]
    if backend == "sqlite":  # a file path: no user, password or host to find
        path, _, query = rest.partition("?")
        line = _query_piece_problem(query) or _decoded_problem(path, "database path")
        return problems + ([line] if line else [])
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    netloc, after = rest[:end], rest[end:]
    path_query, hsep, _fragment = after.partition("#")
    path, _, query = path_query.partition("?")
    if "@" in after:
        problems.append(f"has an '@' after the host: {_ENCODE_HINT}, and '@' elsewhere as %40")
        return problems  # everything after the netloc may be a piece of the password
    if hsep:
        problems.append(f"has a '#' fragment, which a database URL never has: {_ENCODE_HINT}")
        return problems
    line = _query_piece_problem(query)
    if line:
        return [*problems, line]
    userinfo, at, hostport = netloc.rpartition("@")
    if at:
        user, _, password = userinfo.partition(":")
        for part, what in ((user, "user name"), (password, "password")):
            line = _decoded_problem(part, what)
            if line:
                problems.append(line)
    if hostport.startswith("["):
        host, _, port_part = hostport.partition("]")
        host += "]"
        colon, port = port_part[:1] == ":", port_part[1:]
        if port_part and not colon:
            problems.append("has text after the ']' of an IPv6 host that is not a :port")
    else:
        host, colon_s, port = hostport.partition(":")
        colon = bool(colon_s)
    if colon and not (_PORT.fullmatch(port) and 1 <= int(port) <= 65535):
        problems.append(
            "has an invalid port: expected a number from 1 to 65535 (a ':' without an "
            f"'@' after it, or an unencoded '/', '?' or '#' in the password, gives this: "
            f"{_ENCODE_HINT})"
        )
    line = _decoded_problem(host, "host")
    if line:
        problems.append(line)
    line = _decoded_problem(path.lstrip("/"), "database name")
    if line:
        problems.append(line)
    if not host and not _query_has(query, SOCKET_KEYS[backend]):
        problems.append(f"has no host: give one ({_SOCKET_EXAMPLES[backend]})")
    if not problems:
        try:  # the parser DatabaseURL uses must agree (e.g. a '[' in the password)
            urlsplit(url).port  # noqa: B018 - raises ValueError
        except ValueError:
            problems.append(f"does not parse as a URL: {_ENCODE_HINT}")
    return problems


def _query_piece_problem(query: str) -> str | None:
    for piece in query.split("&"):
        if piece and "=" not in piece:
            return (
                "has a query piece without '=' (every driver option is key=value; an "
                f"unencoded '&' or '?' in a value or the password can cause this: {_ENCODE_HINT})"
            )
    return None


def _query_pairs(query: str) -> list[tuple[str, str]]:
    pairs = []
    for piece in query.split("&"):
        if piece:
            raw_key, _, raw_val = piece.partition("=")
            pairs.append((unquote(raw_key.replace("+", " ")), unquote(raw_val.replace("+", " "))))
    return pairs


def _query_has(query: str, key: str) -> bool:
    return any(k == key and v for k, v in _query_pairs(query))


def query_problems(url: str, option_names: Iterable[str]) -> list[str]:
    """Problems of the driver keys left in the query of a URL that parses."""
    backend = parse_url_scheme(url)[0]
    query = url.partition("?")[2].partition("#")[0]
    problems: list[str] = []
    seen: dict[str, int] = {}
    pairs = _query_pairs(query)
    for key, _ in pairs:
        seen[key] = seen.get(key, 0) + 1
    names = sorted(option_names)
    for key, count in seen.items():
        if not _QUERY_KEY.fullmatch(key):
            problems.append(
                "has a query key that is not an option name (letters, digits, '_', '.', '-'); "
                + _ENCODE_HINT
            )
            continue
        if count > 1:
            problems.append(f"query key {key!r} is given {count} times: give it once")
        known = DRIVER_OPTIONS[backend]
        if key not in known:
            lower = key.lower()
            near = sorted((edit_distance(lower, n), n) for n in names)
            if near and near[0][0] <= 2:
                problems.append(
                    f"query key {key!r} is neither a pool option nor a {backend} driver "
                    f"option (did you mean {near[0][1]!r}?)"
                )
    for key, value in pairs:
        if _QUERY_KEY.fullmatch(key) and has_control(value):
            what = "a secret" if is_sensitive_key(key) else repr(key)
            problems.append(f"query value of {what} contains a control character (such as %00)")
    return problems
