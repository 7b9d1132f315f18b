"""``in_transaction()`` for poolbridge's Tortoise clients: no connection lost to a cancel.

Tortoise's ``TransactionContextPooled.__aenter__`` checks a connection out of the pool and
then awaits ``begin()`` (a BEGIN round trip; on SQLite a COMMIT and a BEGIN in aiosqlite's
thread). When the task is cancelled during ``begin()``, ``__aenter__`` raises, so
``async with`` never calls ``__aexit__`` — the only place Tortoise releases the connection —
and the connection stays checked out for good (a cancel storm exhausts the pool). The same
happens when ``begin()`` fails with an error.

:class:`GuardedTransactionContext` does what Tortoise's ``__aenter__`` does and, when anything
after the checkout fails, unbinds the transaction from the task's context and gives the
connection back before re-raising (on asyncpg also forgetting the failed Transaction
object, which would turn every later BEGIN on that connection into a SAVEPOINT). Its
transaction state is unknown (the BEGIN may still run on the server or in aiosqlite's
thread after the cancel), so a pool that can be told so (``release_dirty``, poolbridge's
engine facade) rolls it back or replaces it; psycopg_pool inspects the connection's
status itself. ``__aexit__`` is Tortoise's.
"""

from __future__ import annotations

from typing import Any

from tortoise.backends.base.client import (
    TransactionalDBClient,
    TransactionContext,
    TransactionContextPooled,
)
from tortoise.connection import get_connections

__all__ = ["GuardedTransactionContext", "give_back_dirty", "guarded"]


async def give_back_dirty(pool: Any, conn: Any) -> None:
    """Return ``conn``, whose transaction state is unknown, to a Tortoise-facing pool."""
    release_dirty = getattr(pool, "release_dirty", None)
    if release_dirty is not None:
        await release_dirty(conn)
    else:
        await pool.release(conn)


class GuardedTransactionContext(TransactionContextPooled):
    """Tortoise's pooled transaction context, releasing its connection when entry fails."""

    __slots__ = ()

    async def __aenter__(self) -> TransactionalDBClient:
        await self.ensure_connection()
        client = self.client
        pool = client._parent._pool
        conn = await pool.acquire()
        client._connection = conn
        try:
            # as Tortoise: bound to the task's context before BEGIN, so the task always
            # sees the transaction wrapper
            self.token = get_connections().set(self.connection_name, client)
            try:
                await client.begin()
            except BaseException:
                get_connections().reset(self.token)
                raise
        except BaseException:
            # __aexit__ will not run: this is the only chance to give the connection back
            _forget_failed_begin(client, conn)
            await give_back_dirty(pool, conn)
            raise
        return client


def _forget_failed_begin(client: Any, conn: Any) -> None:
    """asyncpg: a Transaction whose ``start()`` failed stays the connection's top-level
    transaction (asyncpg clears it only in its own pool's reset), so every later
    ``transaction()`` on that connection would send SAVEPOINT and fail. The release that
    follows rolls the connection back, which ends whatever the interrupted BEGIN started."""
    xact = getattr(client, "transaction", None)  # Tortoise's asyncpg wrapper sets it
    if xact is not None and getattr(conn, "_top_xact", None) is xact:
        conn._top_xact = None


def guarded(ctx: TransactionContext) -> TransactionContext:
    """``ctx`` as a :class:`GuardedTransactionContext` when it is Tortoise's pooled one."""
    if type(ctx) is not TransactionContextPooled:
        return ctx
    return GuardedTransactionContext(ctx.client, ctx._pool_init_lock)
