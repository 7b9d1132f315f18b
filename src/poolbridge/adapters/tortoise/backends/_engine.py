"""What poolbridge's engine-backed Tortoise clients share (asyncpg, MySQL, SQLite file).

Tortoise's asyncpg and MySQL clients use the driver's pool, which waits forever when
exhausted and has no lifetime by age, pre-ping, warm-up, hooks or stats. The clients in
the backend modules beside this one keep everything Tortoise does (SQL, executors,
transactions, exception translation) and replace only the pool: ``client._pool`` becomes
an :class:`EngineFacade` whose ``acquire()``/``release()`` — the two calls Tortoise makes
on a pool — are the engine's ``getconn()``/``putconn()``. An exhausted pool therefore
raises :class:`poolbridge.PoolTimeout` after ``acquire_timeout`` from every Tortoise entry
point (model queries, ``in_transaction()``, ``connection.execute_query()``).

The client classes themselves live in modules whose path names their backend
(``backends.asyncpg``, ``backends.mysql``, ``backends.sqlite``): Tortoise's migration
executor picks its schema editor from the client class's ``__module__``.

``create_connection(with_db=False)`` (Tortoise's ``db_create``/``db_delete`` path) keeps the
native driver pool: it is a short maintenance connection to the server's default database.
"""

from __future__ import annotations

from typing import Any

from tortoise.backends.base.client import PoolConnectionWrapper, TransactionContext

from poolbridge.adapters._engine_holder import EngineHolder
from poolbridge.adapters.tortoise._tx import guarded
from poolbridge.adapters.tortoise.backends import BINDING_KEY, OneLoopClient, TortoiseBinding
from poolbridge.engine.checkout import Engine

__all__ = ["EngineFacade", "EngineSwap", "binding_of"]


def binding_of(db_info: dict[str, Any]) -> TortoiseBinding:
    """The :class:`TortoiseBinding` in a connection dict's credentials, or a LookupError
    saying how such a dict is built."""
    binding = db_info.get("credentials", {}).get(BINDING_KEY)
    if not isinstance(binding, TortoiseBinding):
        raise LookupError(
            "a poolbridge Tortoise connection needs credentials['poolbridge']: build the "
            "config with poolbridge.adapters.tortoise.tortoise_config()"
        )
    return binding


class EngineFacade:
    """What Tortoise sees as ``client._pool``: ``acquire()`` and ``release(conn)``."""

    __slots__ = ("engine",)

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def acquire(self) -> Any:
        return await self.engine.getconn()

    async def release(self, conn: Any) -> None:
        await self.engine.putconn(conn)

    async def release_dirty(self, conn: Any) -> None:
        """Give back a connection whose transaction state is unknown (an interrupted
        BEGIN): the engine rolls it back whatever the driver believes, or replaces it."""
        await self.engine.putconn(conn, _state_unknown=True)

    def __repr__(self) -> str:
        return repr(self.engine)


class _EngineConnectionWrapper(PoolConnectionWrapper[Any]):
    """Tortoise's pool wrapper, except that a block that raised (a statement cancelled
    mid-way, an error) gives the connection back as dirty, as the engine's own acquire()
    does: Tortoise releases it as idle whatever happened, while the driver may still be
    mid-exchange with the server (an asyncpg statement cancelled between its Parse and its
    Sync). The engine rolls it back, which waits for that exchange to end, or replaces it."""

    __slots__ = ()

    async def __aenter__(self) -> Any:
        pool: Any = self.client._pool
        if not isinstance(pool, EngineFacade):  # not connected yet: Tortoise's path opens it
            return await super().__aenter__()
        self.connection = conn = await pool.engine.getconn()
        return conn

    async def __aexit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        pool: Any = self.client._pool
        if isinstance(pool, EngineFacade):
            # straight to the engine: one call per side instead of Tortoise's wrapper,
            # the facade and the engine (this runs for every query Tortoise sends)
            await pool.engine.putconn(self.connection, _state_unknown=exc_val is not None)
        else:
            await super().__aexit__(exc_type, exc_val, exc_tb)


class EngineSwap(OneLoopClient):
    """``_close`` / ``_expire_connections`` of a Tortoise client whose ``_pool`` is an
    :class:`EngineFacade` (else Tortoise's own); mixed in before Tortoise's client class."""

    _pool: Any
    poolbridge: EngineHolder

    async def _close(self) -> None:
        pool: Any = self._pool
        if isinstance(pool, EngineFacade):
            self._pool = None
            await pool.engine.close()
            return
        await super()._close()  # type: ignore[misc]

    def acquire_connection(self) -> Any:
        if isinstance(self._pool, EngineFacade):  # connected: skip building Tortoise's own
            return _EngineConnectionWrapper(self, self._pool_init_lock)  # type: ignore[arg-type,attr-defined]
        wrapper = super().acquire_connection()  # type: ignore[misc]
        if type(wrapper) is PoolConnectionWrapper:
            return _EngineConnectionWrapper(self, wrapper._pool_init_lock)  # type: ignore[arg-type]
        return wrapper

    def _in_transaction(self) -> TransactionContext:
        # Tortoise's pooled context loses the connection when BEGIN is cancelled
        return guarded(super()._in_transaction())  # type: ignore[misc]

    async def _expire_connections(self) -> None:
        pool: Any = self._pool
        if isinstance(pool, EngineFacade):
            # replace every connection: idle ones now, checked-out ones after use
            pool.engine.expire_all()
            return
        await super()._expire_connections()  # type: ignore[misc]
