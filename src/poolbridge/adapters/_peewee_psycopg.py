"""peewee-async's Psycopg3Database on a hooked psycopg_pool (poolbridge errors, hooks, stats).

psycopg_pool honours every pool knob, so this backend keeps it (DESIGN: "psycopg keeps
psycopg_pool"); :class:`HookedAsyncConnectionPool` adds poolbridge's hooks, stats, leak
tracking and errors. Unlike peewee-async's own psycopg backend, the password is resolved per
connection and never formatted into the DSN.
"""

from __future__ import annotations

from typing import Any

import peewee_async
import psycopg
import psycopg.conninfo
import psycopg_pool
from peewee_async.pool import PoolBackend

from ..errors import PoolTimeout
from ._peewee_backend import CLOSE_TIMEOUT, binding_from
from ._psycopg_hooked import HookedAsyncConnectionPool, PsycopgHolder, libpq_options

__all__ = ["Psycopg3Database", "PsycopgHookedBackend"]


class PsycopgHookedBackend(PoolBackend):  # type: ignore[misc]
    """peewee-async's psycopg backend with poolbridge's errors, hooks and stats."""

    required_modules = ["psycopg", "psycopg_pool"]

    def __init__(self, *, database: str, **kwargs: Any) -> None:
        binding = binding_from(kwargs)
        super().__init__(database=database)
        self.holder = PsycopgHolder(binding.config, adapter="peewee_async", hooks=binding.hooks)

    def has_acquired_connections(self) -> bool:
        return self.holder.recorder.used > 0

    async def create(self) -> None:
        holder = self.holder
        holder.check_open()
        config = holder.config
        u = config.database_url
        settings: dict[str, Any] = {
            "host": u.host,
            "port": u.port,
            "user": u.username,
            "dbname": u.database,
            "application_name": config.name,
            "connect_timeout": max(1, round(config.connect_timeout)),
            "options": libpq_options(config),
        }
        if isinstance(config.ssl, str):
            settings["sslmode"] = config.ssl
        settings.update(u.query)
        conninfo = psycopg.conninfo.make_conninfo(
            **{k: v for k, v in settings.items() if v is not None}
        )
        base = {"cursor_factory": psycopg.AsyncClientCursor, "autocommit": True}
        kwargs = holder.pool_kwargs(
            {
                "conninfo": conninfo,
                "kwargs": base,
                "min_size": config.min_size,
                "max_size": config.max_size,
                "timeout": config.acquire_timeout,
                "max_waiting": config.max_waiting,
                "max_lifetime": config.max_lifetime if config.max_lifetime is not None else 1e9,
                "max_idle": config.max_idle if config.max_idle is not None else 1e9,
                "reconnect_timeout": config.acquire_timeout,
            }
        )
        static = kwargs["kwargs"]

        async def connect_kwargs() -> dict[str, Any]:
            # the password is resolved per connection and never formatted into conninfo
            password = await config.get_password()
            return {**static, "password": password} if password is not None else static

        kwargs["kwargs"] = connect_kwargs
        pool = HookedAsyncConnectionPool(open=False, **kwargs)
        try:
            await pool.open(wait=True, timeout=config.acquire_timeout)
        except psycopg_pool.PoolTimeout as exc:
            await pool.close()
            raise PoolTimeout(
                f"pool {config.name!r}: could not open min_size={config.min_size} connection(s) "
                f"within acquire_timeout={config.acquire_timeout}s"
            ) from exc
        holder.pool = pool
        self.pool = pool

    async def acquire(self) -> Any:
        if self.pool is None:
            await self.connect()
        assert self.pool is not None
        return await self.pool.getconn()

    async def release(self, conn: Any) -> None:
        assert self.pool is not None, "Pool is not connected"
        await self.pool.putconn(conn)

    async def close(self, timeout: float | None = CLOSE_TIMEOUT) -> None:
        await self.holder.close(timeout)


class Psycopg3Database(peewee_async.Psycopg3Database):  # type: ignore[misc]
    """peewee-async's psycopg 3 database on a hooked psycopg_pool."""

    pool_backend_cls = PsycopgHookedBackend
