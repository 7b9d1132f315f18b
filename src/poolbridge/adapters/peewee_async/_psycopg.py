"""peewee-async's Psycopg3Database on a hooked psycopg_pool (poolbridge errors, hooks, stats).

psycopg_pool honours every pool knob, so this backend keeps it (DESIGN: "psycopg keeps
psycopg_pool"); the shared
:class:`~poolbridge.drivers.psycopg.pool.PBConnectionPool` adds poolbridge's hooks, stats,
leak tracking and errors. Unlike peewee-async's own psycopg backend, the password is resolved per
connection and never formatted into the DSN.
"""

from __future__ import annotations

from typing import Any

import peewee_async
import psycopg

from poolbridge.adapters.peewee_async._backend import HolderBackend, binding_from
from poolbridge.drivers.psycopg.conninfo import conninfo_kwargs, pool_options
from poolbridge.drivers.psycopg.pool import PBConnectionPool, PsycopgHolder

__all__ = ["Psycopg3Database", "PsycopgHookedBackend"]


class PsycopgHookedBackend(HolderBackend):
    """peewee-async's psycopg backend with poolbridge's errors, hooks and stats."""

    required_modules = ["psycopg", "psycopg_pool"]

    def __init__(self, *, database: str, **kwargs: Any) -> None:
        binding = binding_from(kwargs)
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

        options = {**pool_options(config), "reconnect_timeout": config.acquire_timeout}
        pool = PBConnectionPool("", kwargs=connect_kwargs, poolbridge=holder, **options)
        await pool.pb_open()
        holder.pool = pool
        self.pool = pool


class Psycopg3Database(peewee_async.Psycopg3Database):  # type: ignore[misc]
    """peewee-async's psycopg 3 database on a hooked psycopg_pool."""

    pool_backend_cls = PsycopgHookedBackend
