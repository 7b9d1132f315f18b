"""Tortoise ``engine`` module for MySQL/MariaDB, under poolbridge's pool engine.

The path names the backend as Tortoise's own ``tortoise.backends.mysql`` does: Tortoise's
migration executor picks the MySQL schema editor (backquoted names) from the client
class's ``__module__``; a path without "mysql" would get the generic editor, whose
PostgreSQL-style quoting MySQL rejects (error 1064).

The client runs on the driver Tortoise's MySQL backend imported (asyncmy when installed,
else aiomysql): Tortoise's error translation and savepoints use that driver's classes.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from tortoise.backends.mysql import client as tortoise_mysql
from tortoise.backends.mysql.client import MySQLClient
from tortoise.exceptions import ConfigurationError, DBConnectionError
from tortoise.timezone import get_default_timezone, get_use_tz

from poolbridge.adapters._engine_holder import EngineHolder
from poolbridge.adapters.tortoise.backends import TortoiseBinding
from poolbridge.adapters.tortoise.backends._engine import EngineFacade, EngineSwap, binding_of

__all__ = ["MySQLEngineClient", "client_class", "get_client_class"]


class MySQLEngineClient(EngineSwap, MySQLClient):
    """Tortoise's MySQL client on poolbridge's engine, using the driver Tortoise imported."""

    def __init__(self, *, poolbridge: TortoiseBinding, password: Any = None, **kwargs: Any):
        imported = vars(tortoise_mysql)["mysql"].__name__
        if poolbridge.driver != imported:
            # Tortoise's error translation and savepoints use `imported`'s classes
            raise ConfigurationError(
                f"Tortoise's MySQL backend imported {imported}; a poolbridge client cannot "
                f"run it on {poolbridge.driver} (set driver={imported!r} or leave it unset)"
            )
        super().__init__(password=password, **kwargs)
        self.poolbridge = EngineHolder(
            poolbridge.engine_config, poolbridge.driver, adapter="tortoise", hooks=poolbridge.hooks
        )

    async def create_connection(self, with_db: bool) -> None:
        if not with_db:
            # the native path needs the password as a string, only for this call
            provider = self.password
            self.password = await self.poolbridge.config.get_password() or ""
            try:
                await super().create_connection(with_db)
            finally:
                self.password = provider
            return
        # as Tortoise's own client: an unknown charset fails here, before any connect
        if vars(tortoise_mysql)["charset_by_name"](self.charset) is None:
            raise DBConnectionError(f"Unknown charset {self.charset}")
        config = self.poolbridge.config
        session = dict(config.session)
        if self.storage_engine:
            # Tortoise sets it on its first connection only; poolbridge on every one
            session.setdefault("default_storage_engine", self.storage_engine)
            if self.storage_engine.lower() != "innodb":
                # what Tortoise's own client does for a non-transactional engine
                self.capabilities.__dict__["supports_transactions"] = False
        if get_use_tz():
            # Tortoise sets it on its first connection only; poolbridge on every one
            session.setdefault("time_zone", _tz_offset())
        if session != dict(config.session):
            config = dataclasses.replace(config, session=session)
        try:
            engine = await self.poolbridge.open(config)
        except vars(tortoise_mysql)["errors"].OperationalError as exc:
            raise DBConnectionError(f"Can't connect to MySQL server: {exc}") from exc
        self._pool = EngineFacade(engine)
        await self._post_connect()


def _tz_offset() -> str:
    offset = datetime.now(tz=get_default_timezone()).utcoffset()
    total = int(offset.total_seconds()) if offset is not None else 0
    return f"{total // 3600:+d}:{abs(total) % 3600 // 60:02d}"


client_class = MySQLEngineClient


def get_client_class(db_info: dict[str, Any]) -> type[MySQLEngineClient]:
    """Called by Tortoise with the connection dict."""
    binding_of(db_info)
    return MySQLEngineClient
