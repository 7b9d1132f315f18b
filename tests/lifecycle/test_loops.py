"""A pool used from another event loop, or after os.fork(), raises WrongEventLoop.

Every entry point of every stack is tried — poolbridge's handle and the ORM's own
(``engine.connect()``, ``AsyncSession``, Tortoise's connection and transactions,
peewee-async's ``aio_connection``/``aio_execute``/``aio_atomic``, psycopg_pool's
``pool.connection()``) — instead of a driver failing deep inside with "attached to a
different loop" (sqlalchemy#5823, tortoise#1110). The pool is opened in an asyncio.Runner
(the machinery of asyncio.run()) and used from a separate asyncio.run(); afterwards the
pool still works in its own loop and closes there.
"""

from __future__ import annotations

import asyncio
import os
import select
import time
from typing import Any

import pytest

from poolbridge.adapters.registry import get_adapter
from poolbridge.engine.handle import EnginePool
from poolbridge.errors import WrongEventLoop
from poolbridge.pool.handle import Pool

from ._stacks import PARAMS, Server, Stack, config, open_stack, pool_ids, url_for

#: what the child reports per entry point
_OK, _UNEXPECTED_SUCCESS, _WRONG_MESSAGE, _OTHER_ERROR = 0, 1, 2, 3


async def _use(pool: Pool[Any], entry: str) -> None:
    points = get_adapter(pool.adapter).entry_points(pool)
    async with points[entry]() as run:
        await run("SELECT 1")


def _entries(pool: Pool[Any]) -> list[str]:
    return sorted(get_adapter(pool.adapter).entry_points(pool))


@pytest.mark.parametrize("stack", PARAMS)
def test_other_event_loop_is_refused(request: pytest.FixtureRequest, stack: Stack) -> None:
    url = url_for(request, stack)
    with asyncio.Runner() as runner:
        pool = runner.run(open_stack(stack, config(stack, url)))
        try:
            entries = _entries(pool)
            assert "handle" in entries and len(entries) >= (1 if stack.adapter in (
                "asyncpg", "aiopg", "aiomysql", "asyncmy", "aiosqlite") else 2)  # fmt: skip
            for entry in entries:
                with pytest.raises(WrongEventLoop, match="another event loop") as info:
                    asyncio.run(_use(pool, entry))
                assert repr(pool.name) in str(info.value)
            with pytest.raises(WrongEventLoop):
                asyncio.run(pool.rotate())
            before = pool_ids(pool)
            for entry in entries:  # its own loop still works, on the same connections
                runner.run(_use(pool, entry))
            assert pool_ids(pool) == before
            assert pool.stats()["connection.count.used"] == 0
        finally:
            runner.run(pool.close(timeout=5))


def _child(pool: Pool[Any], entries: list[str], write_end: int) -> None:
    """In the forked child: try every entry point in a new loop; report one byte each."""
    report = bytearray()
    try:
        for entry in entries:
            try:
                asyncio.run(_use(pool, entry))
                report.append(_UNEXPECTED_SUCCESS)
            except WrongEventLoop as exc:
                report.append(_OK if "os.fork()" in str(exc) else _WRONG_MESSAGE)
            except BaseException:
                report.append(_OTHER_ERROR)
        if isinstance(pool, EnginePool):
            # closing the parent's pool in the child must not touch the shared sockets
            # (the parent checks below that its connections are alive and usable)
            try:
                t0 = time.monotonic()
                asyncio.run(pool.close(timeout=1))
                # at once: nothing to wait for (without the fork check it waited for close
                # tasks on the parent's loop, which never runs here, for connect_timeout)
                quick = time.monotonic() - t0 < 3.0
                report.append(_OK if pool.closed and quick else _OTHER_ERROR)
            except BaseException:
                report.append(_OTHER_ERROR)
        os.write(write_end, bytes(report))
    finally:
        os._exit(0)  # no cleanup in the child: the parent's connections are not ours


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("stack", PARAMS)
def test_use_after_fork_is_refused(request: pytest.FixtureRequest, stack: Stack) -> None:
    url = url_for(request, stack)

    async def alive(ids: set[Any]) -> set[int]:
        async with Server(stack, url) as server:
            return await server.alive(ids)

    with asyncio.Runner() as runner:
        pool = runner.run(open_stack(stack, config(stack, url)))
        try:
            entries = _entries(pool)
            ids = pool_ids(pool)
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:
                _child(pool, entries, write_end)
            os.close(write_end)
            try:
                ready, _, _ = select.select([read_end], [], [], 30)
                assert ready, "the child did not answer within 30 s"
                report = os.read(read_end, 64)
            finally:
                os.close(read_end)
                _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
            tried = [*entries, "close()"] if isinstance(pool, EnginePool) else entries
            assert list(report) == [_OK] * len(tried), dict(zip(tried, report, strict=False))
            # the parent's pool is untouched: same connections, alive server-side, usable
            assert pool_ids(pool) == ids
            if stack.backend != "sqlite":
                assert runner.run(alive(ids)) == {i for i in ids if isinstance(i, int)}
            for entry in entries:
                runner.run(_use(pool, entry))
        finally:
            runner.run(pool.close(timeout=5))
