"""A task cancelled while psycopg_pool takes a connection back never loses the pool a slot.

psycopg_pool's checkin detaches the connection, then waits for the pool's lock (or, for a
stale connection, closes it before ordering the replacement). A cancellation at that wait
used to leave psycopg_pool counting a connection nobody held: the pool stayed one short for
good and, at max_size, the next caller timed out. Every stack built on poolbridge's psycopg
pool subclass is covered (the psycopg adapter, peewee-async and Tortoise on psycopg; each
block-scoped entry point). SQLAlchemy on psycopg uses SQLAlchemy's own pool, not this one.

Server-side facts decide: the pool's connections in ``pg_stat_activity`` (by the
application_name, the pool name) come back to the configured size and a caller gets one.

The contention a storm of callers makes on psycopg_pool's lock is staged by holding that
lock (``_lock``, read by these tests only: nothing public holds it across a wait), and the
moment a task waits for it is read from asyncio.Lock's ``_waiters``; both are checked to
exist, so a rename fails here by name rather than making the tests vacuous.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from time import monotonic
from typing import Any

import psycopg
import pytest

from poolbridge import ConnectionEvent, Hooks, PoolConfig, open_pool
from poolbridge.adapters.registry import get_adapter
from poolbridge.drivers.psycopg.conninfo import conninfo_kwargs, pool_options
from poolbridge.drivers.psycopg.pool import PBConnectionPool, PsycopgHolder
from poolbridge.testing.servers.proxy import TcpProxy

pytestmark = [pytest.mark.asyncio, pytest.mark.server, pytest.mark.timeout(60)]

#: (adapter, entry point): every stack on PBConnectionPool, each entry point whose block
#: holds one connection from enter to exit
CASES = [
    ("psycopg", "handle"),
    ("psycopg", "pool.connection"),
    ("peewee_async", "handle"),
    ("peewee_async", "aio_connection"),
    ("peewee_async", "aio_atomic"),
    ("tortoise", "handle"),
    ("tortoise", "tortoise.connection"),
    ("tortoise", "in_transaction"),
]
IDS = [f"{a}-{e}" for a, e in CASES]
SIZE = 2  # min_size = max_size: a lost slot shows as one connection short, for good


def _config(pg_url: str, **fields: Any) -> PoolConfig:
    name = f"pbslot_{uuid.uuid4().hex[:8]}"
    return PoolConfig(url=pg_url, driver="psycopg", name=name, min_size=SIZE, max_size=SIZE,
                      acquire_timeout=2, **fields)  # fmt: skip


def _native(pool: Any) -> PBConnectionPool:
    native = pool._holder.pool
    assert isinstance(native, PBConnectionPool)
    return native


def _pool_lock(native: PBConnectionPool) -> asyncio.Lock:
    lock = getattr(native, "_lock", None)
    assert isinstance(lock, asyncio.Lock), "psycopg_pool's pool lock is no longer `_lock`"
    return lock


async def _until_waited_on(lock: asyncio.Lock, task: asyncio.Task[None]) -> None:
    """Until some task waits for ``lock`` (``task`` must not end meanwhile)."""
    assert hasattr(lock, "_waiters"), "asyncio.Lock no longer keeps `_waiters`"
    for _ in range(500):
        if lock._waiters:
            return
        assert not task.done(), f"the task ended before waiting for the lock: {task}"
        await asyncio.sleep(0.01)
    raise AssertionError("nobody ever waited for psycopg_pool's lock")


async def _server_count(pg_url: str, name: str) -> int:
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as admin:
        cur = await admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (name,)
        )
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])


async def _whole_again(pg_url: str, pool: Any, name: str, adapter: str) -> None:
    """The pool has its SIZE connections on the server again, and SIZE callers get one
    each at once (a lost slot makes the last one time out)."""
    count = -1
    for _ in range(100):
        count = await _server_count(pg_url, name)
        if count == SIZE:
            break
        await asyncio.sleep(0.05)
    assert count == SIZE, f"{count} of {SIZE} connections on the server"
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(SIZE):
            conn = await stack.enter_async_context(pool.acquire())
            assert await get_adapter(adapter).fetch_scalar(conn, "SELECT 1") == 1
    assert pool.stats()["connection.count.used"] == 0
    assert await _server_count(pg_url, name) == SIZE


@pytest.mark.parametrize(("adapter", "entry"), CASES, ids=IDS)
async def test_cancelled_while_checkin_waits_for_the_pool_lock(
    pg_url: str, adapter: str, entry: str
) -> None:
    cfg = _config(pg_url)
    async with open_pool(cfg, adapter=adapter) as pool:
        enter = get_adapter(adapter).entry_points(pool)[entry]
        lock = _pool_lock(_native(pool))
        inside, leave = asyncio.Event(), asyncio.Event()

        async def user() -> None:
            async with enter() as run:
                assert await run("SELECT 1") == 1
                inside.set()
                await leave.wait()

        task = asyncio.create_task(user())
        await asyncio.wait_for(inside.wait(), 5)
        assert pool.stats()["connection.count.used"] == 1
        async with lock:  # another caller's turn: the checkin has to wait for it
            leave.set()
            await _until_waited_on(lock, task)
            task.cancel()
            task.cancel()  # a second cancellation changes nothing either
            await asyncio.sleep(0.05)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
        assert task.cancelled(), "the held-back cancellation was lost"
        await _whole_again(pg_url, pool, cfg.name, adapter)


@pytest.mark.parametrize("adapter", ["psycopg", "peewee_async", "tortoise"])
async def test_cancelled_while_a_stale_connection_is_closed_at_checkin(
    pg_url: str, adapter: str
) -> None:
    """rotate() makes the checked-out connection stale: psycopg_pool closes it at checkin,
    and the async on_close hook is where the cancellation lands, before psycopg_pool orders
    the replacement."""
    closing, go_on = asyncio.Event(), asyncio.Event()
    held: list[Any] = []

    def on_checkout(ev: ConnectionEvent) -> None:
        held.append(ev.connection_id)

    async def on_close(ev: ConnectionEvent) -> None:
        if held and ev.connection_id == held[0]:  # the user's, not the idle one rotate closes
            closing.set()
            await go_on.wait()

    cfg = _config(pg_url)
    hooks = Hooks(on_checkout=on_checkout, on_close=on_close)
    async with open_pool(cfg, adapter=adapter, hooks=hooks) as pool:
        inside, leave = asyncio.Event(), asyncio.Event()

        async def user() -> None:
            async with pool.acquire():
                inside.set()
                await leave.wait()

        task = asyncio.create_task(user())
        await asyncio.wait_for(inside.wait(), 5)
        await pool.rotate()
        leave.set()
        await asyncio.wait_for(closing.wait(), 5)
        task.cancel()
        await asyncio.sleep(0.05)
        go_on.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
        assert task.cancelled()
        await _whole_again(pg_url, pool, cfg.name, adapter)


async def test_cancelled_twice_during_the_checkout_check(pg_url: str) -> None:
    """Cancelled in the pool's check (pre_ping or the caller's), stock psycopg_pool puts the
    connection back in the cancelled task; a second cancellation there, while it waits for
    its lock, must not lose it (poolbridge gives it back sheltered instead)."""
    cfg = _config(pg_url)
    checking, never = asyncio.Event(), asyncio.Event()

    async def check(conn: Any) -> None:
        if not checking.is_set():
            checking.set()
            await never.wait()

    holder = PsycopgHolder(cfg, adapter="psycopg", hooks=None)
    native = PBConnectionPool("", kwargs=conninfo_kwargs(cfg, None), poolbridge=holder,
                              check=check, **pool_options(cfg))  # fmt: skip
    holder.pool = native
    await native.pb_open()
    try:
        lock = _pool_lock(native)

        async def user() -> None:
            async with native.connection() as conn:
                await conn.execute("SELECT 1")

        task = asyncio.create_task(user())
        await asyncio.wait_for(checking.wait(), 5)
        async with lock:
            task.cancel()
            # stock: psycopg_pool now puts the live connection back and waits for the lock
            for _ in range(20):
                if task.done() or lock._waiters:
                    break
                await asyncio.sleep(0.01)
            task.cancel()
            await asyncio.sleep(0.05)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
        assert task.cancelled()
        count = -1
        for _ in range(100):
            count = await _server_count(pg_url, cfg.name)
            if count == SIZE:
                break
            await asyncio.sleep(0.05)
        assert count == SIZE, f"{count} of {SIZE} connections on the server"
        async with native.connection() as a, native.connection() as b:
            await a.execute("SELECT 1")
            await b.execute("SELECT 1")
    finally:
        await native.pb_close(5)


async def test_cancellation_still_reaches_psycopg_pools_own_rollback(pg_url: str) -> None:
    """The one wait of the checkin that a cancellation still interrupts: psycopg_pool's
    rollback of a connection returned inside a transaction (a round trip, the connection
    still attached). On a stalled link the release ends at the cancellation, not at the
    connect_timeout bound, and the slot is whole again once the link heals."""
    async with TcpProxy("127.0.0.1", 5432) as proxy:
        cfg = _config(proxy.url_for(pg_url), connect_timeout=20)
        async with open_pool(cfg, adapter="psycopg") as pool:
            native = pool.native
            conns = [await native.getconn() for _ in range(SIZE)]
            pid = conns[0].info.backend_pid
            await conns[0].execute("SELECT 1")  # a transaction: psycopg_pool rolls it back
            await native.putconn(conns[1])
            proxy.stall()
            task = asyncio.create_task(native.putconn(conns[0]))
            await asyncio.sleep(0.3)
            assert not task.done(), "the rollback should hang on the stalled link"
            t0 = monotonic()
            # psycopg answers the first cancellation with a cancel request of its own (which
            # the stalled link swallows too); the second one interrupts that
            task.cancel()
            await asyncio.sleep(0.05)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 5)
            assert monotonic() - t0 < 5, "the cancellation waited for the rollback's bound"
            await proxy.heal()
            assert pool.stats()["connection.count.used"] == 0
            count = -1
            for _ in range(100):
                count = await _server_count(pg_url, cfg.name)
                if count == SIZE:
                    break
                await asyncio.sleep(0.05)
            assert count == SIZE, f"{count} of {SIZE} connections on the server"
            async with pool.acquire() as a, pool.acquire() as b:
                assert pid not in (a.info.backend_pid, b.info.backend_pid)  # replaced
