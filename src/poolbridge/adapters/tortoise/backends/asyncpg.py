"""Tortoise ``engine`` module for PostgreSQL on asyncpg, under poolbridge's pool engine.

The path names the backend as Tortoise's own ``tortoise.backends.asyncpg`` does: Tortoise's
migration executor picks the asyncpg schema editor from the client class's ``__module__``,
and ``tortoise sqlmigrate`` reads the ``engine`` path (it names no "postgres" here, as
stock, so the printed SQL is not wrapped in BEGIN/COMMIT, as stock).
"""

from __future__ import annotations

from typing import Any, cast

import asyncpg
from tortoise.backends.asyncpg.client import AsyncpgDBClient
from tortoise.exceptions import DBConnectionError

from poolbridge.adapters._engine_holder import EngineHolder
from poolbridge.adapters.tortoise.backends import ConfigPassword, TortoiseBinding
from poolbridge.adapters.tortoise.backends._engine import EngineFacade, EngineSwap, binding_of

__all__ = ["AsyncpgEngineClient", "client_class", "get_client_class"]


class AsyncpgEngineClient(EngineSwap, AsyncpgDBClient):
    """Tortoise's asyncpg client on poolbridge's engine."""

    def __init__(self, *, poolbridge: TortoiseBinding, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.poolbridge = EngineHolder(
            poolbridge.engine_config, "asyncpg", adapter="tortoise", hooks=poolbridge.hooks
        )
        if isinstance(self.password, ConfigPassword):  # follow rotate(password=)
            self.password = cast(Any, ConfigPassword(self.poolbridge))

    async def create_connection(self, with_db: bool) -> None:
        if not with_db:
            await super().create_connection(with_db)
            return
        try:
            engine = await self.poolbridge.open()
        except asyncpg.InvalidCatalogNameError as exc:
            raise DBConnectionError(
                f"Can't establish connection to database {self.database}"
            ) from exc
        self._pool = EngineFacade(engine)
        await self._post_connect()


client_class = AsyncpgEngineClient


def get_client_class(db_info: dict[str, Any]) -> type[AsyncpgEngineClient]:
    """Called by Tortoise with the connection dict."""
    binding_of(db_info)
    return AsyncpgEngineClient
