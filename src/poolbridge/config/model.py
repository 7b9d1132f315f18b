"""PoolConfig: one declarative, validated description of an async connection pool.

``PoolConfig`` is a frozen, keyword-only dataclass. Construction validates every field at
once (``__post_init__``) and raises ONE :class:`~poolbridge.errors.ConfigError` listing every
problem, each line naming field, rule and value. Values given as text (durations such as
``"500ms"``, integers, booleans) are normalised, so a config built from code, a dict, TOML, the
environment or a URL compares equal when the values are equal. Unknown keyword arguments are
ConfigErrors with a "did you mean" suggestion, never a bare TypeError.

Pool options in the URL query (``?max_size=20&acquire_timeout=5s``) are taken out of ``url``
and beat the other arguments of the same call; the remaining query keys stay in the URL for
the driver (``config.database_url.query``). The password is never part of ``repr``/``str``.
See docs/configuration.md for every field, unit, default and rule.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import ssl as _ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal, cast
from urllib.parse import parse_qsl, unquote, urlsplit

from poolbridge.config.hosts import parse_host, split_url_hosts
from poolbridge.config.redact import MASK, redact_mapping, redact_url
from poolbridge.config.url_rules import structure_problems
from poolbridge.config.validate import (
    CHECKS,
    DRIVERS,
    RETRY_CHECKS,
    URL_OPTION_NAMES,
    check_fields,
    parse_mapping,
    parse_url_scheme,
    show,
)
from poolbridge.config.validate import split_url_options as _split
from poolbridge.errors import ConfigError

__all__ = [
    "URL_OPTION_NAMES",
    "DatabaseURL",
    "PasswordProvider",
    "PoolConfig",
    "RetryPolicy",
    "suggest",
]

Backend = Literal["postgresql", "mysql", "sqlite"]
PasswordProvider = Callable[[], str | Awaitable[str]]


def suggest(name: object, known: tuple[str, ...], *, prefix: str = "") -> str:
    """``unknown field 'max_sise' (did you mean 'max_size'?)``, the line for an unknown key."""
    line = f"unknown field {prefix}{name!r}" if not prefix else f"unknown field '{prefix}{name}'"
    if isinstance(name, str):
        close = difflib.get_close_matches(name.lower(), known, n=1, cutoff=0.6)
        if close:
            line += f" (did you mean '{prefix}{close[0]}'?)"
    return line


def _install_strict_init(cls: type[Any], prefix: str) -> None:
    """Wrap the generated ``__init__``: unknown or missing keywords become ConfigError lines,
    reported together with the validation problems of the known ones."""
    generated = cls.__init__
    names = tuple(f.name for f in dataclasses.fields(cls))
    required = tuple(
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if args:
            raise TypeError(f"{cls.__name__}() takes keyword arguments only")
        problems = [suggest(k, names, prefix=prefix) for k in kwargs if k not in names]
        problems += [f"{prefix}{r} is required" for r in required if r not in kwargs]
        if not problems:
            generated(self, **kwargs)
            return
        known = {k: v for k, v in kwargs.items() if k in names}
        if all(r in known for r in required):
            try:
                generated(self, **known)
            except ConfigError as exc:
                problems += exc.problems
        raise ConfigError(problems)

    __init__.__doc__ = generated.__doc__
    __init__.__wrapped__ = generated  # type: ignore[attr-defined]
    setattr(cls, "__init__", __init__)  # noqa: B010 - mypy refuses a direct method assignment


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Connection-establishment retry: capped exponential backoff with jitter.

    ``attempts`` counts the first try (>= 1); backoff doubles from ``initial_backoff`` (s) up
    to ``max_backoff`` (s, >= initial_backoff); ``jitter`` (0..1) is the +/- fraction applied
    to each sleep. The whole retry is bounded by the caller's acquire_timeout.
    """

    attempts: int = 3
    initial_backoff: float = 0.1
    max_backoff: float = 2.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        problems: list[str] = []
        raw = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values = check_fields(raw, RETRY_CHECKS, problems, prefix="retry.")
        lo, hi = values.get("initial_backoff", 0.0), values.get("max_backoff", 0.0)
        if not problems and hi < lo:
            problems.append(
                f"retry.max_backoff must be >= retry.initial_backoff "
                f"(got max_backoff={hi:g}, initial_backoff={lo:g})"
            )
        if problems:
            raise ConfigError(problems)
        for name, value in values.items():
            object.__setattr__(self, name, value)

    @classmethod
    def from_value(cls, value: object) -> RetryPolicy:
        """A RetryPolicy from an instance, a mapping (TOML table) or a JSON object string."""
        if isinstance(value, RetryPolicy):
            return value
        try:
            mapping = parse_mapping(value)
        except ValueError as exc:
            raise ConfigError([f"retry {exc} (got {show(value)})"]) from None
        return cls(**{k if isinstance(k, str) else repr(k): v for k, v in mapping.items()})

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


_install_strict_init(RetryPolicy, "retry.")
RETRY_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(RetryPolicy))


@dataclass(frozen=True)
class DatabaseURL:
    """A parsed database URL. ``query`` holds only driver keys (PoolConfig keys removed)."""

    scheme: str
    backend: Backend
    driver: str | None
    username: str | None
    password: str | None = field(repr=False)
    host: str | None
    port: int | None
    database: str | None
    query: Mapping[str, str]

    @classmethod
    def parse(cls, url: str) -> DatabaseURL:
        parts = urlsplit(url)
        backend, driver = parse_url_scheme(url)
        database: str | None
        if backend == "sqlite":
            path = url.split("://", 1)[1].split("?", 1)[0]
            database = path[1:] if path.startswith("/") else path
            database = unquote(database) or ":memory:"
        else:
            database = unquote(parts.path.lstrip("/")) or None
        return cls(
            scheme=parts.scheme,
            backend=cast(Backend, backend),
            driver=driver,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
            host=unquote(parts.hostname) if parts.hostname else None,
            port=parts.port if backend != "sqlite" else None,
            database=database,
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
        )

    def __repr__(self) -> str:
        shown = {
            "scheme": self.scheme,
            "backend": self.backend,
            "driver": self.driver,
            "username": self.username,
            "password": None if self.password is None else MASK,
            "host": self.host,
            "port": self.port,
            "database": self.database,
            "query": redact_mapping(self.query),
        }
        return f"DatabaseURL({', '.join(f'{k}={v!r}' for k, v in shown.items())})"


@dataclass(frozen=True, kw_only=True)
class PoolConfig:
    """See docs/configuration.md for every field, unit, default and rule."""

    url: str = field(repr=False)
    driver: str | None = None
    min_size: int = 1
    max_size: int = 10
    acquire_timeout: float = 30.0
    connect_timeout: float = 10.0
    statement_timeout: float | None = None
    max_lifetime: float | None = 3600.0
    max_idle: float | None = 600.0
    pre_ping: bool | None = None
    max_waiting: int = 0
    reset: Literal["rollback", "full"] = "rollback"
    statement_cache: bool = True
    isolation_level: Literal["read_committed", "repeatable_read", "serializable"] | None = None
    session: Mapping[str, str] = field(default_factory=dict)
    ssl: bool | str | _ssl.SSLContext | None = None
    password: str | PasswordProvider | None = field(default=None, repr=False)
    driver_options: Mapping[str, Any] = field(default_factory=dict)
    leak_timeout: float | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    name: str = "default"
    hosts: tuple[str, ...] = ()
    target_session_attrs: Literal[
        "any", "read-write", "read-only", "primary", "standby", "prefer-standby"
    ] = "any"
    load_balance_hosts: Literal["disable", "random"] = "disable"
    host_recheck_interval: float | None = 30.0

    def __post_init__(self) -> None:
        problems: list[str] = []
        raw = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        retry_over: dict[str, Any] = {}
        options: dict[str, str] = {}
        raw["url"], url_hosts = split_url_hosts(raw["url"])
        if url_hosts is not None:  # hosts in the URL beat the argument, like its options
            raw["hosts"] = url_hosts
        if isinstance(raw["url"], str) and not structure_problems(raw["url"]):
            # a URL that does not parse keeps its query: its "options" may be password pieces
            raw["url"], options = _split(raw["url"], URL_OPTION_NAMES, problems)
            for key, value in options.items():  # URL options beat the other arguments
                if key.startswith("retry_"):
                    retry_over[key.removeprefix("retry_")] = value
                else:
                    raw[key] = value
        values = check_fields(raw, CHECKS, problems)
        values["retry"] = self._check_retry(raw["retry"], retry_over, problems)
        lo, hi = values.get("min_size", 0), values.get("max_size", 1)
        if "min_size" in values and "max_size" in values and hi < lo:
            problems.append(f"max_size must be >= min_size (got max_size={hi}, min_size={lo})")
        if values.get("driver") and "url" in values:
            backend = parse_url_scheme(values["url"])[0]
            if values["driver"] not in DRIVERS[backend]:
                problems.append(
                    f"driver must be one of {', '.join(DRIVERS[backend])} for a {backend} URL "
                    f"(got {values['driver']!r})"
                )
        if problems:
            from_url = {k.replace("retry_", "retry.", 1) for k in options}
            lines = [f"{p} [url query]" if p.split(" ", 1)[0] in from_url else p for p in problems]
            raise ConfigError(lines)  # every value in them went through show(): redacted
        for name, value in values.items():
            object.__setattr__(self, name, value)

    @staticmethod
    def _check_retry(value: Any, override: dict[str, Any], problems: list[str]) -> Any:
        try:
            if override:  # URL options retry_<field> beat the retry given with them
                base = value.to_dict() if isinstance(value, RetryPolicy) else parse_mapping(value)
                value = {**base, **override}
            return RetryPolicy.from_value(value)
        except ConfigError as exc:
            problems.extend(exc.problems)
        except ValueError as exc:
            problems.append(f"retry {exc} (got {show(value)})")
        return None

    # -- derived views ---------------------------------------------------------------------
    @cached_property
    def database_url(self) -> DatabaseURL:
        """The parsed URL (driver query keys only)."""
        return DatabaseURL.parse(self.url)

    @property
    def backend(self) -> Backend:
        return self.database_url.backend

    def host_list(self) -> list[tuple[str, int | None]]:
        """The hosts to try, in the configured order: ``hosts`` (an entry without a port
        takes the URL's), else the URL's one host. Empty for SQLite and socket URLs."""
        u = self.database_url
        if self.hosts:
            return [(h, p if p is not None else u.port) for h, p in map(parse_host, self.hosts)]
        return [(u.host, u.port)] if u.host else []

    @property
    def multi_host(self) -> bool:
        """True when the high-availability fields change how a connection is opened."""
        return bool(self.hosts) or self.target_session_attrs != "any"

    async def get_password(self) -> str | None:
        """The password for a new connection: the ``password`` field (calling a provider,
        awaiting it if async) or else the one in the URL."""
        pw = self.password
        if pw is None:
            return self.database_url.password
        if isinstance(pw, str):
            return pw
        result = pw()
        if inspect.isawaitable(result):
            result = await result
        return str(result)

    def secrets(self) -> tuple[str, ...]:
        """The config's secret strings (the password field and the URL's password).

        For a caller's own checks (e.g. asserting a log holds neither); poolbridge itself
        never searches text for them: it redacts by structure (config/redact.py)."""
        found = [self.database_url.password, self.password]
        return tuple(s for s in found if isinstance(s, str) and s)

    def to_dict(self, *, redact: bool = False) -> dict[str, Any]:
        """Every field as plain data; ``retry`` as a dict.

        ``PoolConfig.from_dict(c.to_dict()) == c`` always holds (a password provider or an
        SSLContext is kept as the same object). ``redact=True`` gives a display form: URL
        password and secret-named query values masked, ``password`` as ``"***"`` (or
        ``"<provider>"``), SSLContext as ``"<SSLContext>"``, secret-named keys of
        ``session`` and ``driver_options`` (at any depth) masked; that form is not meant
        to be loaded back.
        """
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, RetryPolicy):
                value = value.to_dict()
            elif isinstance(value, Mapping):
                value = dict(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        if redact:
            out["url"] = redact_url(self.url)
            pw = self.password
            out["password"] = None if pw is None else MASK if isinstance(pw, str) else "<provider>"
            if isinstance(self.ssl, _ssl.SSLContext):
                out["ssl"] = "<SSLContext>"
            out["session"] = redact_mapping(self.session)
            out["driver_options"] = redact_mapping(self.driver_options)
        return out

    def __repr__(self) -> str:
        shown = self.to_dict(redact=True)
        shown["password"] = None if self.password is None else "<set>"
        shown["retry"] = self.retry
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    __str__ = __repr__

    def __hash__(self) -> int:
        # session/driver_options are dicts: hash a hashable subset (equal configs agree on it)
        return hash((self.url, self.name, self.driver, self.min_size, self.max_size))

    # -- loaders (implemented in config/loaders.py) -------------------------------------------
    @classmethod
    def from_url(cls, url: str, **fields: Any) -> PoolConfig:
        """Config from a URL; pool options in its query beat ``fields`` (same level)."""
        from poolbridge.config.loaders import from_url

        return from_url(url, **fields)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> PoolConfig:
        """Config from a mapping (TOML table, JSON); ``retry`` may be a nested mapping."""
        from poolbridge.config.loaders import from_dict

        return from_dict(data, source=source)

    @classmethod
    def from_env(
        cls, pool: str = "default", *, environ: Mapping[str, str] | None = None
    ) -> PoolConfig:
        """Config from ``POOLBRIDGE_<FIELD>`` and ``POOLBRIDGE_<POOL>__<FIELD>`` variables."""
        from poolbridge.config.loaders import from_env

        return from_env(pool, environ=environ)


_install_strict_init(PoolConfig, "")

FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(PoolConfig))
_EXPECTED_OPTIONS = frozenset(
    [n for n in FIELD_NAMES if n not in ("url", "retry")] + [f"retry_{r}" for r in RETRY_FIELDS]
)
assert _EXPECTED_OPTIONS == URL_OPTION_NAMES, (
    "validate.URL_OPTION_NAMES out of sync with PoolConfig"
)
