"""PoolConfig: one declarative, validated description of an async connection pool.

STUB written by the architect to fix the interface; the config helper owns this file and
completes validation, duration parsing, loaders and redaction WITHOUT changing the public
attributes below (adapters and the engine rely on them).
"""

from __future__ import annotations

import inspect
import ssl as _ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = ["DatabaseURL", "PasswordProvider", "PoolConfig", "RetryPolicy"]

Backend = Literal["postgresql", "mysql", "sqlite"]
PasswordProvider = Callable[[], str | Awaitable[str]]


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Connection-establishment retry: capped exponential backoff with jitter.

    ``attempts`` counts the first try; backoff doubles from ``initial_backoff`` (s) up to
    ``max_backoff`` (s); ``jitter`` is the +/- fraction applied to each sleep. The whole
    retry is bounded by the caller's acquire_timeout.
    """

    attempts: int = 3
    initial_backoff: float = 0.1
    max_backoff: float = 2.0
    jitter: float = 0.1


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
    pre_ping: bool = False
    max_waiting: int = 0
    reset: Literal["rollback", "full"] = "rollback"
    statement_cache: bool = True
    isolation_level: Literal["read_committed", "repeatable_read", "serializable"] | None = None
    session: Mapping[str, str] = field(default_factory=dict)
    ssl: str | _ssl.SSLContext | None = None
    password: str | PasswordProvider | None = field(default=None, repr=False)
    driver_options: Mapping[str, Any] = field(default_factory=dict)
    leak_timeout: float | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    name: str = "default"

    @cached_property
    def database_url(self) -> DatabaseURL:
        """The parsed URL (driver query keys only)."""
        parts = urlsplit(self.url)
        scheme = parts.scheme
        base, _, drv = scheme.partition("+")
        backend: Backend
        if base in ("postgresql", "postgres"):
            backend = "postgresql"
        elif base in ("mysql", "mariadb"):
            backend = "mysql"
        else:
            backend = "sqlite"
        database: str | None
        if backend == "sqlite":
            path = self.url.split("://", 1)[1].split("?", 1)[0]
            database = path[1:] if path.startswith("/") else path
            database = database or ":memory:"
        else:
            database = unquote(parts.path.lstrip("/")) or None
        return DatabaseURL(
            scheme=scheme,
            backend=backend,
            driver=drv or None,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            host=parts.hostname,
            port=parts.port,
            database=database,
            query=dict(parse_qsl(parts.query)),
        )

    @property
    def backend(self) -> Backend:
        return self.database_url.backend

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
