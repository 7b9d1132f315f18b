"""aiopg's connect waits (within its timeout) for a connection slot the server still counts.

aiopg closes its socket when a task is cancelled mid-statement, while the backend runs on
until the statement ends, holding one of the role's CONNECTION LIMIT slots: the pool's
replacement connection must not fail on that moment. A slot that stays taken still fails.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from poolbridge import PoolConfig
from poolbridge.drivers.aiopg import AiopgShim

pytestmark = pytest.mark.asyncio

ADMIN = "postgresql://root@127.0.0.1:5432/test"


@pytest_asyncio.fixture
async def one_slot_role(pg_url: str) -> AsyncIterator[str]:
    """A login role allowed one connection at a time."""
    name = f"pb_slot_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN)
    try:
        await admin.execute(f"CREATE ROLE {name} LOGIN CONNECTION LIMIT 1")
        yield name
    finally:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", name
        )
        await admin.execute(f"DROP ROLE IF EXISTS {name}")
        await admin.close()


async def test_connect_waits_for_a_slot_being_freed(one_slot_role: str) -> None:
    config = PoolConfig(url=f"postgresql://{one_slot_role}@127.0.0.1:5432/test", max_size=1)
    shim = AiopgShim()
    holder = await asyncpg.connect(f"postgresql://{one_slot_role}@127.0.0.1:5432/test")

    async def free_later() -> None:
        await asyncio.sleep(0.5)
        await holder.close()

    freeing = asyncio.create_task(free_later())
    conn = await shim.connect(config, 8.0)
    try:
        assert await shim.server_id(conn) != holder.get_server_pid()
        assert holder.is_closed()  # it got in only after the slot was freed
    finally:
        await shim.close(conn)
        await freeing


async def test_connect_fails_when_the_slot_stays_taken(one_slot_role: str) -> None:
    config = PoolConfig(url=f"postgresql://{one_slot_role}@127.0.0.1:5432/test", max_size=1)
    holder = await asyncpg.connect(f"postgresql://{one_slot_role}@127.0.0.1:5432/test")
    try:
        with pytest.raises(Exception, match="too many connections for role"):
            await asyncio.wait_for(AiopgShim().connect(config, 1.0), 10.0)
    finally:
        await holder.close()
