"""Tortoise ``engine`` module for PostgreSQL on psycopg: a hooked psycopg_pool.

The path names the backend as Tortoise's own ``tortoise.backends.psycopg`` does: Tortoise's
migration executor picks the psycopg schema editor from the client class's ``__module__``,
and ``tortoise sqlmigrate`` wraps the printed SQL in BEGIN/COMMIT when the ``engine`` path
names "psycopg", as it does for the stock client.

psycopg_pool honours every pool knob, so this backend keeps it; what Tortoise lacks here
is poolbridge's surface. Its pool raised ``psycopg_pool.PoolTimeout`` untranslated after a
hard-coded 30 s; this client's pool (the shared
:class:`~poolbridge.drivers.psycopg.pool.PBConnectionPool`) takes ``acquire_timeout`` as
psycopg_pool's ``timeout`` and raises :class:`poolbridge.PoolTimeout`.
"""

from __future__ import annotations

from typing import Any, cast

import psycopg.conninfo
from tortoise.backends.base.client import TransactionContext
from tortoise.backends.psycopg.client import AsyncConnectionPool, PsycopgClient

from poolbridge.adapters.tortoise._tx import guarded
from poolbridge.adapters.tortoise.backends import ConfigPassword, OneLoopClient, TortoiseBinding
from poolbridge.adapters.tortoise.backends._engine import binding_of
from poolbridge.drivers.psycopg.conninfo import libpq_options
from poolbridge.drivers.psycopg.pool import PBConnectionPool, PsycopgHolder

__all__ = ["PsycopgHookedClient", "TortoiseHookedPool", "client_class", "get_client_class"]


class TortoiseHookedPool(PBConnectionPool, AsyncConnectionPool):
    """Tortoise's pool class (``acquire()``/``release()`` over getconn/putconn) with
    poolbridge's hooks, stats and errors in getconn/putconn."""


class PsycopgHookedClient(OneLoopClient, PsycopgClient):
    """Tortoise's psycopg client whose pool reports to poolbridge."""

    def __init__(self, *, poolbridge: TortoiseBinding, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.poolbridge = PsycopgHolder(
            poolbridge.engine_config, adapter="tortoise", hooks=poolbridge.hooks
        )
        if isinstance(self.password, ConfigPassword):  # follow rotate(password=)
            self.password = cast(Any, ConfigPassword(self.poolbridge))

    async def create_pool(self, **kwargs: Any) -> TortoiseHookedPool:
        holder = self.poolbridge
        holder.check_open()
        # Tortoise overwrites server_settings["options"] with its search_path: merge ours
        # and the user's (URL, or driver_options replacing it) after it
        conninfo = kwargs.get("conninfo", "")
        current = psycopg.conninfo.conninfo_to_dict(conninfo).get("options")
        options = libpq_options(holder.config, str(current) if current else None)
        if options:
            kwargs["conninfo"] = psycopg.conninfo.make_conninfo(conninfo, options=options)
        # the knobs set on connections: driver options (their ``options`` are merged into
        # the conninfo above, not a keyword that would replace it), statement cache
        conn_kwargs = {**(kwargs.get("kwargs") or {}), **holder.config.driver_options}
        conn_kwargs.pop("options", None)
        if not holder.config.statement_cache:
            conn_kwargs["prepare_threshold"] = None
        kwargs["kwargs"] = conn_kwargs
        if holder.config.pre_ping is False:  # explicitly off: Tortoise's own check too
            kwargs.pop("check", None)
        pool = TortoiseHookedPool(poolbridge=holder, **kwargs)
        await pool.open()
        holder.pool = pool
        return pool

    def _in_transaction(self) -> TransactionContext:
        # Tortoise's pooled context loses the connection when BEGIN is cancelled
        return guarded(super()._in_transaction())

    async def _close(self) -> None:
        pool = self._pool
        if isinstance(pool, PBConnectionPool):
            self._pool = None
            await pool.pb_close(10.0)
            return
        await super()._close()


client_class = PsycopgHookedClient


def get_client_class(db_info: dict[str, Any]) -> type[PsycopgHookedClient]:
    """Called by Tortoise with the connection dict."""
    binding_of(db_info)
    return PsycopgHookedClient
