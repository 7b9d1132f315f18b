"""peewee-async's Psycopg3Database on a hooked psycopg_pool (poolbridge errors, hooks, stats).

psycopg_pool honours every pool knob, so this backend keeps it (docs/internals.md: psycopg
keeps psycopg_pool); the shared
:class:`~poolbridge.drivers.psycopg.pool.PBConnectionPool` adds poolbridge's hooks, stats,
leak tracking and errors. Unlike peewee-async's own psycopg backend, the password is resolved per
connection and never formatted into the DSN.

The pool errors (closed, timed out, too many waiting) are psycopg_pool's and poolbridge's
at once, and reach peewee's exception wrapper as ``peewee.OperationalError`` as stock.
"""

from __future__ import annotations

from typing import Any

import peewee_async
import psycopg

from poolbridge import errors
from poolbridge.adapters.peewee_async._backend import (
    HolderBackend,
    _connect_from_config,
    binding_from,
)
from poolbridge.adapters.peewee_async._stock import driver_kwargs
from poolbridge.drivers.psycopg import pool as pb_pool
from poolbridge.drivers.psycopg.conninfo import conninfo_kwargs, pool_options
from poolbridge.drivers.psycopg.pool import PBConnectionPool, PsycopgHolder

__all__ = [
    "OperationalError",
    "PoolClosed",
    "PoolTimeout",
    "Psycopg3Database",
    "PsycopgHookedBackend",
    "TooManyRequests",
]


class OperationalError(psycopg.OperationalError):
    """psycopg's OperationalError under its own name, first base of the pool errors below.

    peewee's exception wrapper maps an error by its class name, then by its first base's
    name; psycopg_pool's errors derive from ``psycopg.OperationalError`` directly and become
    ``peewee.OperationalError``. poolbridge's subclass both poolbridge's and psycopg_pool's
    error, and ``psycopg.OperationalError`` cannot come first before its own subclass: this
    class keeps the name the wrapper looks for."""


class PoolClosed(OperationalError, pb_pool.PoolClosed):
    """Used after ``aio_close()``: psycopg_pool's and poolbridge's PoolClosed."""


class PoolTimeout(OperationalError, pb_pool.PoolTimeout):
    """No connection within ``acquire_timeout``: psycopg_pool's and poolbridge's."""


class TooManyRequests(OperationalError, pb_pool.TooManyRequests):
    """``max_waiting`` reached: psycopg_pool's and poolbridge's."""


class PsycopgHookedBackend(HolderBackend):
    """peewee-async's psycopg backend with poolbridge's errors, hooks and stats."""

    required_modules = ["psycopg", "psycopg_pool"]
    error_map = (
        (errors.PoolClosed, PoolClosed),
        (errors.PoolTimeout, PoolTimeout),
        (errors.TooManyRequests, TooManyRequests),
    )

    def __init__(self, *, database: str, **kwargs: Any) -> None:
        binding = binding_from(kwargs)
        self.binding = binding
        self.pool_kwargs = driver_kwargs("psycopg", binding.config, database, kwargs)
        super().__init__(database=database)
        self.holder = PsycopgHolder(binding.config, adapter="peewee_async", hooks=binding.hooks)

    async def create(self) -> None:
        holder = self.holder
        holder.check_open()
        config = holder.config

        async def connect_kwargs() -> dict[str, Any]:
            # the password is resolved per connection and never formatted into conninfo;
            # holder.config is read each time: rotate() may have replaced the password
            current = holder.config
            kw = conninfo_kwargs(current, await current.get_password())
            return {"cursor_factory": psycopg.AsyncClientCursor, "autocommit": True, **kw}

        options = {
            **pool_options(config),
            "reconnect_timeout": config.acquire_timeout,
            **self.pool_kwargs,
        }
        pool = PBConnectionPool("", kwargs=connect_kwargs, poolbridge=holder, **options)
        await pool.pb_open()
        holder.pool = pool
        self.pool = pool

    async def close(self) -> None:
        """As peewee-async's psycopg backend: psycopg_pool's close(), which closes the
        idle connections now and those in use when they are given back."""
        if self.pool is not None:
            await self.pool.close()


class Psycopg3Database(peewee_async.Psycopg3Database):  # type: ignore[misc]
    """peewee-async's psycopg 3 database on a hooked psycopg_pool."""

    pool_backend_cls = PsycopgHookedBackend

    def _connect(self) -> Any:
        return _connect_from_config(self, super()._connect)
