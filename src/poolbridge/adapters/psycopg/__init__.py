"""psycopg_pool adapter: PoolConfig -> a real ``psycopg_pool.AsyncConnectionPool``.

psycopg_pool has nearly every knob natively (min/max size, timeout, max_waiting,
max_lifetime with jitter, max_idle, check, configure, reset), so this adapter is mostly a
table. What it lacks — poolbridge's hooks, stats, leak tracking and error types — lives in
a small subclass of the pool (:mod:`poolbridge.drivers.psycopg.pool`, shared with the
Tortoise and peewee-async psycopg backends), so code that uses the
native ``pool.connection()`` gets them too, not only callers of the poolbridge handle.

Session settings, ``statement_timeout`` and ``isolation_level`` travel in the startup
packet (libpq ``options=-c ...``): no extra round trip, and ``DISCARD ALL`` (``reset="full"``)
restores them because startup values are the session defaults.

The verbs every adapter package shares::

    pool = await open_pool(config)     # the uniform handle; pool.native: the psycopg_pool pool
    plain = psycopg_pool.AsyncConnectionPool(**native_arguments(config))  # stock, no hooks
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, ClassVar

from poolbridge.adapters._ha import ha_rows
from poolbridge.adapters.base import (
    Adapter,
    EntryPoint,
    ScalarRunner,
    Translation,
    as_config,
    enforce,
    explicit_fields,
    opener,
    require_modules,
)
from poolbridge.config.model import PoolConfig
from poolbridge.drivers.base import libpq_options_conflicts
from poolbridge.drivers.psycopg.conninfo import conninfo_kwargs, libpq_options, pool_options
from poolbridge.errors import UnsupportedOptionError
from poolbridge.pool.handle import Pool, PoolOpener
from poolbridge.pool.hooks import Hooks

if TYPE_CHECKING:
    from poolbridge.drivers.psycopg.pool import PBConnectionPool

__all__ = [
    "PsycopgAdapter",
    "adapter",
    "conninfo_kwargs",
    "libpq_options",
    "native_arguments",
    "open_pool",
]

#: psycopg_pool is used through its own class: no ORM-named entry point
ORM_ENTRY_POINTS: tuple[str, ...] = ()
#: a plain AsyncConnectionPool built from native_arguments() has no poolbridge handle
HANDLE_ACCESS: str | None = None

_SSLMODES = {"disable", "require", "verify-ca", "verify-full"}


class PsycopgAdapter(Adapter):
    """Raw psycopg 3 on psycopg_pool's AsyncConnectionPool (PostgreSQL only)."""

    name: ClassVar[str] = "psycopg"
    extra: ClassVar[str] = "psycopg"
    drivers: ClassVar[Mapping[str, tuple[str, ...]]] = {"postgresql": ("psycopg",)}

    def check_available(self, config: PoolConfig | None = None) -> None:
        require_modules(self.name, self.extra, "psycopg", "psycopg_pool")

    def translate(self, config: PoolConfig) -> Translation:
        native: dict[str, Any] = {
            **pool_options(config),
            "check": "check_connection bounded by connect_timeout and the acquire deadline"
            if config.pre_ping
            else None,
            "name": config.name,
            "open": False,
            "kwargs": conninfo_kwargs(config, config.database_url.password),
        }
        emulated: dict[str, str] = {
            "reset": "rollback of a dirty transaction at checkin (psycopg knows the status "
            "locally: no round trip when idle), bounded by connect_timeout: by the handle's "
            "acquire() release, else by psycopg_pool with its WARNING log (putconn of a "
            "dirty connection); 'full' adds DISCARD ALL and replays on_connect "
            "(psycopg_pool's reset=)",
            "retry": "psycopg_pool's connection attempts, with its own backoff (1 s, doubling, "
            "+/-10 %; retry's backoff values are not used); poolbridge counts every failed one "
            "(connection.errors). At open: ConnectError after retry.attempts failed attempts per "
            "min_size connection, at the first error retrying cannot cure (wrong password, "
            "unknown database), or when acquire_timeout passes. Later (a connection lost or the "
            "pool growing): reconnects in the background until reconnect_timeout = "
            "max(acquire_timeout, connect_timeout), whatever retry.attempts says, then gives "
            "that connection up until a caller needs one (callers waiting meanwhile get "
            "PoolTimeout naming the last error)",
            "leak_timeout": "poolbridge's leak tracker watches checkouts",
            "password": "a provider is called for every new connection (kwargs callable)",
        }
        ha_emulated, unsupported = ha_rows(config, "libpq")
        emulated.update(ha_emulated)
        # the user's libpq options are merged with ours; a disagreeing knob is refused
        unsupported.update(libpq_options_conflicts(config))
        if config.backend != "postgresql":
            unsupported["url"] = f"psycopg only speaks PostgreSQL (got {config.backend})"
        if config.ssl is not None and not isinstance(config.ssl, str):
            unsupported["ssl"] = "libpq cannot use an ssl.SSLContext; use an sslmode string"
        elif isinstance(config.ssl, str) and config.ssl not in _SSLMODES:
            unsupported["ssl"] = f"unknown sslmode {config.ssl!r}"
        return Translation(native=native, emulated=emulated, unsupported=unsupported)

    async def open(self, config: PoolConfig, hooks: Hooks | None = None) -> Pool[Any]:
        self.check_available(config)
        self.driver_for(config)  # UnsupportedOptionError for a non-PostgreSQL URL
        enforce(self.name, config, self.translate(config))
        from poolbridge.adapters.psycopg._handle import open_psycopg_pool

        return await open_psycopg_pool(config, hooks, adapter=self.name)

    def closed_requirements(self, backend: str, driver: str) -> Mapping[str, str]:
        return {}

    async def fetch_scalar(self, conn: Any, sql: str) -> Any:
        cur = await conn.execute(sql)
        if cur.description is None:
            return None
        row = await cur.fetchone()
        return None if row is None else row[0]

    def entry_points(self, pool: Pool[Any]) -> Mapping[str, EntryPoint]:
        """The handle, plus psycopg_pool's own ``pool.connection()`` (commits on success)."""
        points = dict(super().entry_points(pool))

        @asynccontextmanager
        async def pool_connection() -> AsyncIterator[ScalarRunner]:
            native: PBConnectionPool = pool.native
            async with native.connection() as conn:

                async def run(sql: str) -> Any:
                    return await self.fetch_scalar(conn, sql)

                yield run

        points["pool.connection"] = pool_connection
        return points


adapter = PsycopgAdapter()


#: knobs that need poolbridge's pool subclass: a plain AsyncConnectionPool cannot carry them
_NEEDS_POOLBRIDGE = {
    "leak_timeout": "leak tracking is poolbridge's pool subclass (use open_pool())",
    "reset": "a full reset is poolbridge's pool subclass (use open_pool())",
    "retry": "counting failed reconnects is poolbridge's pool subclass (use open_pool())",
}


def native_arguments(config: PoolConfig | str) -> dict[str, Any]:
    """Plain ``psycopg_pool.AsyncConnectionPool(**kwargs)`` arguments for ``config`` (a
    PoolConfig or a URL with pool options in its query): sizing and timing, ``kwargs`` for
    ``psycopg.AsyncConnection.connect`` (password included: never print them unredacted),
    ``check`` when ``pre_ping`` is set, and ``open=False``. Knobs that need poolbridge's pool
    subclass raise UnsupportedOptionError when set explicitly."""
    config = as_config(config)
    adapter.check_available(config)
    adapter.driver_for(config)
    enforce(adapter.name, config, adapter.translate(config))
    explicit = explicit_fields(config)
    refused = {k: why for k, why in _NEEDS_POOLBRIDGE.items() if k in explicit}
    if config.password is not None and not isinstance(config.password, str):
        refused["password"] = "a password provider needs poolbridge's pool (use open_pool())"
    if refused:
        raise UnsupportedOptionError(adapter.name, refused)
    from psycopg_pool import AsyncConnectionPool

    password = config.password if isinstance(config.password, str) else None
    kw: dict[str, Any] = {
        "conninfo": "",
        "kwargs": conninfo_kwargs(config, password or config.database_url.password),
        "name": config.name,
        "open": False,
        **pool_options(config),
    }
    if config.pre_ping:
        kw["check"] = AsyncConnectionPool.check_connection
    return kw


def open_pool(config: PoolConfig | str, *, hooks: Hooks | None = None) -> PoolOpener[Pool[Any]]:
    """The uniform handle, opened and warmed up: ``pool = await open_pool(config)`` or
    ``async with open_pool(config) as pool:``; ``pool.native`` is the psycopg_pool pool."""
    return opener(adapter, config, hooks)
