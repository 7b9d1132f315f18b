"""The adapter contract: a translation table (pure data) plus thin glue.

An adapter turns a :class:`PoolConfig` into the native object of its stack. Its
:meth:`Adapter.translate` says, for every knob, whether it is passed to the stack
(``native``), provided by poolbridge inside the native object (``emulated``) or cannot be
honoured (``unsupported``). :func:`enforce` applies DESIGN's rule: an explicitly set
unsupported knob raises UnsupportedOptionError; one left at its default warns once.
"""

from __future__ import annotations

import abc
import dataclasses
import importlib
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

from poolbridge.config.model import PoolConfig
from poolbridge.errors import AdapterNotAvailable, UnsupportedOptionError, UnsupportedOptionWarning
from poolbridge.pool.handle import Pool, PoolOpener
from poolbridge.pool.hooks import Hooks

__all__ = [
    "ADAPTER_VERBS",
    "Adapter",
    "EntryPoint",
    "ScalarRunner",
    "StackSide",
    "StockTwin",
    "Translation",
    "TwinSpec",
    "as_config",
    "enforce",
    "explicit_fields",
    "opener",
    "require_modules",
]

#: the verbs every built-in adapter package exports (docs/adapters/index.md):
#: ``native_arguments(config)`` builds the stack's own constructor arguments, ``open_pool(config,
#: hooks=)`` opens the uniform handle (``.native`` is the stack's object)
ADAPTER_VERBS = ("native_arguments", "open_pool")

ScalarRunner = Callable[[str], Awaitable[Any]]
"""Runs one SQL statement and returns the first column of the first row (or None)."""

EntryPoint = Callable[[], AbstractAsyncContextManager[ScalarRunner]]
"""Opens one way of using the pool (the handle, ``engine.connect()``, a model query...)."""


@dataclass(frozen=True)
class Translation:
    """How one adapter honours one config.

    ``native``: keyword arguments given to the stack as they are (passwords included: never
    print this without :func:`poolbridge.config.redact.redact_mapping`).
    ``emulated``: field -> how poolbridge provides it inside the native object.
    ``unsupported``: field -> why the stack cannot honour it.
    """

    native: dict[str, Any] = field(default_factory=dict)
    emulated: dict[str, str] = field(default_factory=dict)
    unsupported: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        # native kwargs carry the password: a repr (assertion diffs, debuggers, %r logs)
        # shows them redacted
        from poolbridge.config.redact import redact_mapping

        return (
            f"Translation(native={redact_mapping(self.native)!r}, "
            f"emulated={self.emulated!r}, unsupported={self.unsupported!r})"
        )


def explicit_fields(config: PoolConfig) -> set[str]:
    """Fields whose value differs from the PoolConfig default (i.e. set by the user)."""
    out: set[str] = set()
    for f in dataclasses.fields(config):
        if f.default is not dataclasses.MISSING:
            default: Any = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:  # a required field (url) is always the user's own choice
            out.add(f.name)
            continue
        if getattr(config, f.name) != default:
            out.add(f.name)
    return out


#: why ``acquire_timeout=0`` is refused where the pool cannot honour it
ZERO_WAIT_REFUSED = (
    "0 (fail at once when every connection is in use, SQLAlchemy's pool_timeout=0) is "
    "honoured by the sqlalchemy adapter only; give a positive number of seconds"
)


def enforce(
    adapter: str, config: PoolConfig, translation: Translation, *, zero_wait: bool = False
) -> None:
    """Raise for explicitly set unsupported knobs; warn once for defaults that cannot hold.

    ``zero_wait``: the stack honours ``acquire_timeout=0``; elsewhere it is refused.
    """
    if config.acquire_timeout == 0 and not zero_wait:
        raise UnsupportedOptionError(adapter, {"acquire_timeout": ZERO_WAIT_REFUSED})
    if not translation.unsupported:
        return
    explicit = explicit_fields(config)
    errors = {k: v for k, v in translation.unsupported.items() if k in explicit}
    if errors:
        raise UnsupportedOptionError(adapter, errors)
    shown = config.to_dict(redact=True)
    for fname, why in translation.unsupported.items():
        warnings.warn(
            f"adapter {adapter!r} cannot honour the default {fname}={shown.get(fname)!r}: {why}",
            UnsupportedOptionWarning,
            stacklevel=3,
        )


def require_modules(adapter: str, extra: str, *modules: str) -> None:
    """Import the stack's modules or raise AdapterNotAvailable naming the extra to install."""
    for mod in modules:
        try:
            importlib.import_module(mod)
        except ImportError as exc:
            raise AdapterNotAvailable(
                f"adapter {adapter!r} needs the {mod!r} module: pip install 'poolbridge[{extra}]'"
            ) from exc


@dataclass(frozen=True)
class TwinSpec:
    """What both sides of a stock-parity scenario are built with.

    ``url``: the database (with the test role's password: never print it). ``keys``: the
    stock ORM's own connection keys for the scenario (what :meth:`StockTwin.session_keys`
    returned, or empty); each twin passes them on each side the way a user of that side
    would. ``ssl``: a PoolConfig ``ssl`` form, given to the stock side in its native
    spelling. ``timeout``: how long an exhausted pool lets a caller wait.
    """

    url: str = field(repr=False)
    driver: str
    name: str = "pb_parity"
    min_size: int = 1
    max_size: int = 2
    timeout: float = 5.0
    keys: Mapping[str, Any] = field(default_factory=dict)
    ssl: Any = None
    #: one connect attempt, short timeouts: the scenario expects connecting to fail
    fail_fast: bool = False

    def config(self, **overrides: Any) -> PoolConfig:
        """The PoolConfig of poolbridge's side (the stock side never sees it)."""
        values: dict[str, Any] = {
            "url": self.url,
            "driver": self.driver,
            "name": self.name,
            "min_size": self.min_size,
            "max_size": self.max_size,
            "acquire_timeout": self.timeout,
        }
        if self.ssl is not None:
            values["ssl"] = self.ssl
        if self.fail_fast:
            values["retry"] = {"attempts": 1}
            if not self.url.startswith("sqlite"):
                values["connect_timeout"] = self.timeout
        values.update(overrides)
        return PoolConfig(**values)


class StackSide(abc.ABC):
    """One built stack of a parity scenario, stock or poolbridge's, used through the ORM's
    own API (never through poolbridge's handle): what the user of that stack observes."""

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open the stack's pool / first connection as its users do before any query."""

    @abc.abstractmethod
    async def scalar(self, sql: str) -> Any:
        """Run ``sql`` the ORM's way; the first column of the first row (or None)."""

    @abc.abstractmethod
    def hold(self) -> AbstractAsyncContextManager[Any]:
        """Hold one connection of the pool until the block exits (the ORM's way)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the stack the way its users do (``close_connections``, ``aio_close``,
        ``dispose``...)."""

    def identity(self) -> Mapping[str, Any]:
        """What the ORM derives from the stack: dialect, classes it picks, capabilities...
        compared for equality between the sides."""
        return {}

    async def ddl(self, table: str) -> list[str]:
        """The schema SQL the ORM emits for a small model ``table`` (compared as text)."""
        return []

    def pool_surface(self) -> Mapping[str, Any] | None:
        """Public attributes of the pool object the ORM exposes -> their values (None: the
        ORM exposes no pool). Poolbridge's side must answer every name the same."""
        return None

    async def sync_scalar(self, sql: str) -> Any:
        """Run ``sql`` through the ORM's synchronous connection (NotImplementedError: none)."""
        raise NotImplementedError


class StockTwin(abc.ABC):
    """The stock side of an adapter's parity rows, and the matching poolbridge side.

    :meth:`stock` builds the stock stack BY HAND from the URL with the ORM's native
    arguments, never through poolbridge's translation; :meth:`ours` builds the same through
    the adapter's public API. The suite's ``parity_*`` rows run one scenario on both and
    compare what a user observes.
    """

    @abc.abstractmethod
    async def stock(self, spec: TwinSpec) -> StackSide:
        """The stock stack for ``spec`` (not connected yet)."""

    @abc.abstractmethod
    async def ours(self, spec: TwinSpec) -> StackSide:
        """The poolbridge stack for ``spec`` (not connected yet)."""

    def session_keys(self, backend: str, driver: str) -> Mapping[str, Any]:
        """Stock connection keys that set server-session values (application_name,
        sql_mode, a PRAGMA...): the ``parity_session`` row gives them to both sides and
        compares what the server reports."""
        return {}

    def ssl_form(self, backend: str, driver: str) -> Any:
        """A PoolConfig ``ssl`` value this stack accepts stock (``parity_ssl``)."""
        return True

    def closed_rows(self, backend: str, driver: str) -> Mapping[str, str]:
        """Parity rows without a scenario on this stack: row -> true reason."""
        return {}


class Adapter(abc.ABC):
    """One stack. Subclasses set the class attributes and implement the abstract methods."""

    name: ClassVar[str]
    extra: ClassVar[str]
    #: drivers per backend, the first one being the default
    drivers: ClassVar[Mapping[str, tuple[str, ...]]]

    def driver_for(self, config: PoolConfig) -> str:
        """The driver this adapter uses for ``config`` (``driver=``, URL ``+driver``, default)."""
        backend = config.backend
        choices = self.drivers.get(backend, ())
        wanted = config.driver or config.database_url.driver
        if wanted is None:
            if not choices:
                raise UnsupportedOptionError(
                    self.name, {"url": f"backend {backend!r} is not supported"}
                )
            return choices[0]
        if wanted not in choices:
            raise UnsupportedOptionError(
                self.name,
                {
                    "driver": f"{wanted!r} is not available for {backend} on this adapter "
                    f"(choose one of: {', '.join(choices) or 'none'})"
                },
            )
        return wanted

    @abc.abstractmethod
    def check_available(self, config: PoolConfig | None = None) -> None:
        """Import the stack lazily; raise AdapterNotAvailable naming the extra if missing."""

    @abc.abstractmethod
    def translate(self, config: PoolConfig) -> Translation:
        """Pure data: no I/O, no import of the ORM needed."""

    @abc.abstractmethod
    async def open(self, config: PoolConfig, hooks: Hooks | None = None) -> Pool[Any]:
        """Open (and warm up) a pool; ``enforce()`` the translation first."""

    def closed_requirements(self, backend: str, driver: str) -> Mapping[str, str]:
        """Conformance requirements this stack does not meet: requirement -> true reason."""
        return {}

    #: ``"module:Class"`` of this adapter's :class:`StockTwin` (imported on first use), or
    #: None: the stack has no stock twin and its ``parity_*`` rows are closed
    stock_twin_path: ClassVar[str | None] = None

    def stock_twin(self) -> StockTwin | None:
        """The stock twin the ``parity_*`` rows compare against (None: none)."""
        if self.stock_twin_path is None:
            return None
        module, _, attr = self.stock_twin_path.partition(":")
        twin: StockTwin = getattr(importlib.import_module(module), attr)()
        return twin

    # -- glue for the conformance suite ---------------------------------------------------
    @abc.abstractmethod
    async def fetch_scalar(self, conn: Any, sql: str) -> Any:
        """Run ``sql`` on a connection yielded by ``pool.acquire()``; first column of row 1."""

    def entry_points(self, pool: Pool[Any]) -> Mapping[str, EntryPoint]:
        """Ways of using the pool. Always ``handle``; adapters add the ORM's own ones."""

        @asynccontextmanager
        async def handle() -> AsyncIterator[ScalarRunner]:
            async with pool.acquire() as conn:

                async def run(sql: str) -> Any:
                    return await self.fetch_scalar(conn, sql)

                yield run

        return {"handle": handle}


def as_config(config: PoolConfig | str) -> PoolConfig:
    """A PoolConfig as given, or one read from a URL (pool options in its query)."""
    return config if isinstance(config, PoolConfig) else PoolConfig.from_url(config)


def opener(adapter: Adapter, config: PoolConfig | str, hooks: Hooks | None) -> PoolOpener[Any]:
    """``open_pool()`` of an adapter package: awaitable, or ``async with`` (closed on exit)."""

    async def factory() -> Pool[Any]:
        cfg = as_config(config)
        adapter.check_available(cfg)
        return await adapter.open(cfg, hooks)

    return PoolOpener(factory)
