"""Rows about what hooks are for, on every adapter through its own entry points:
session settings in on_connect (hook_on_connect_settings), tagging a session in on_checkout
(hook_checkout_tag) and undoing it in on_checkin (hook_checkin_reset). Every check asks the
server: the connection itself (SHOW / SELECT @@...) and, on PostgreSQL, pg_stat_activity
from the admin connection.

hook_checkin_reset runs once per entry point (they differ in what they leave open at
checkin); the other two go through every entry point in turn within one run (uses held
together run in tasks of their own: an ORM entry point nested in one task may hand out the
connection it already holds).

The hooks are ``async def`` functions that run SQL on ``event.connection``, the native
driver connection, the way the docs show it (docs/hooks-stats-metrics.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from poolbridge.config.model import PoolConfig
from poolbridge.pool.handle import Pool
from poolbridge.pool.hooks import HOOK_NAMES, ConnectionEvent, Hooks
from poolbridge.testing.harness import Case, Session

Hook = Callable[[ConnectionEvent], Awaitable[None]]


async def driver_sql(conn: Any, sql: str) -> Any:
    """Run ``sql`` on a native driver connection (what a hook gets as ``event.connection``);
    first column of the first row, or None."""
    kind = type(conn).__module__.split(".", 1)[0]
    if kind == "asyncpg":
        return await conn.fetchval(sql)
    if kind == "psycopg":
        cur = await conn.execute(sql)
        row = await cur.fetchone() if cur.description is not None else None
    elif kind == "aiosqlite":
        async with conn.execute(sql) as cur:
            row = await cur.fetchone()
    else:  # aiopg, aiomysql, asyncmy: DB-API cursors
        async with conn.cursor() as cur:
            await cur.execute(sql)
            row = await cur.fetchone() if cur.description is not None else None
    return None if row is None else row[0]


async def open_hooked(s: Session, config: PoolConfig, **mine: Hook) -> Pool[Any]:
    """Open a pool through the adapter under test with the hooks ``mine`` (each runs after
    the suite's event recorder, so :meth:`Session.of` sees every event too)."""
    recorder = s.hooks(config.name)

    def combined(name: str) -> Any:
        record = getattr(recorder, name)
        hook = mine.get(name)
        if hook is None:
            return record

        async def both(ev: ConnectionEvent) -> None:
            record(ev)
            await hook(ev)

        return both

    pool = await s.case.adapter.open(config, Hooks(**{h: combined(h) for h in HOOK_NAMES}))
    s.pools.append(pool)
    return pool


def entry_point(s: Session, pool: Pool[Any], i: int) -> str:
    """The ``i``-th use's entry point: every entry point of the adapter in turn."""
    names = list(s.case.adapter.entry_points(pool))
    return names[i % len(names)]


async def together(
    s: Session,
    pool: Pool[Any],
    n: int,
    body: Callable[[Any, int], Awaitable[Any]],
    first: int = 0,
) -> list[Any]:
    """Hold ``n`` uses of ``pool`` at once, each in its own task and through entry point
    ``first + i``, and run ``body(run, i)`` in each once all ``n`` are held."""
    held = 0
    everyone = asyncio.Event()

    async def one(i: int) -> Any:
        nonlocal held
        async with s.use(pool, entry_point(s, pool, first + i)) as run:
            held += 1
            if held == n:
                everyone.set()
            await everyone.wait()
            return await body(run, i)

    return list(await asyncio.gather(*(one(i) for i in range(n))))


def _no_hook_failures(pool: Pool[Any]) -> None:
    failures = pool.stats()["connection.hook_failures"]
    assert failures == 0, f"{failures} hook call(s) raised (see the poolbridge.hooks log)"


# -- on_connect: session settings ---------------------------------------------------------

#: backend -> (statements on_connect runs, {probe: the value the server must answer})
_SETTINGS: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "postgresql": (
        ("SET search_path TO pb_hooked, public", "SET TIME ZONE 'Asia/Kathmandu'"),
        {"SHOW search_path": "pb_hooked, public", "SHOW TimeZone": "Asia/Kathmandu"},
    ),
    "mysql": (
        ("SET time_zone = '+05:45'", "SET SESSION group_concat_max_len = 4321"),
        {"SELECT @@session.time_zone": "+05:45", "SELECT @@session.group_concat_max_len": "4321"},
    ),
}


async def _check_settings(s: Session, run: Any, where: str) -> int | str | None:
    _, probes = _SETTINGS[s.backend]
    for probe, want in probes.items():
        got = str(await run(probe))
        assert got.replace(" ", "") == want.replace(" ", ""), (
            f"{where}: {probe} answered {got!r}, on_connect set {want!r}"
        )
    return await s.server_id(run)


async def _on_connect_settings(s: Session) -> None:
    statements, _ = _SETTINGS[s.backend]

    async def on_connect(ev: ConnectionEvent) -> None:
        for sql in statements:
            await driver_sql(ev.connection, sql)

    # reset="rollback": the warm connection, one opened later, each reused after checkin
    pool = await open_hooked(s, s.config(min_size=1, max_size=3), on_connect=on_connect)

    async def held(run: Any, i: int) -> int | str | None:
        return await _check_settings(s, run, f"held connection {i + 1} of 3")

    seen = set(await together(s, pool, 3, held))
    for i in range(3):
        async with s.use(pool, entry_point(s, pool, i)) as run:
            seen.add(await _check_settings(s, run, f"reuse {i + 1} after checkin"))
    assert len(seen) == 3, f"expected 3 server connections, saw {seen}"
    assert seen <= s.ids(pool), "a connection was used without on_connect having run on it"
    _no_hook_failures(pool)

    # reset="full" wipes session state: on_connect replays it on the same connection
    full = await open_hooked(
        s, s.config(min_size=1, max_size=1, reset="full"), on_connect=on_connect
    )
    for i in range(2):
        async with s.use(full, entry_point(s, full, i)) as run:
            await _check_settings(s, run, f'reset="full", use {i + 1}')
    assert len(s.of(full, "on_connect")) >= 2, "on_connect did not run again after a full reset"
    _no_hook_failures(full)


@pytest.mark.poolbridge_requirement("hook_on_connect_settings")
def test_on_connect_sets_the_session(poolbridge_case: Case) -> None:
    poolbridge_case.run(_on_connect_settings)


# -- on_checkout: tag the session; on_checkin: untag it -----------------------------------

#: backend -> (tag statement with {tag}, untag statement, probe returning the tag)
_TAGS: dict[str, tuple[str, str, str]] = {
    "postgresql": (
        "SET application_name = '{tag}'",
        "RESET application_name",
        "SHOW application_name",
    ),
    "mysql": ("SET @pb_tag = '{tag}'", "SET @pb_tag = NULL", "SELECT @pb_tag"),
}


class Tagger:
    """While :attr:`prefix` is set, on_checkout tags the session ``<prefix>_<server id>``;
    on_checkin untags it."""

    def __init__(self, backend: str) -> None:
        self.tag_sql, self.untag_sql, self.probe = _TAGS[backend]
        self.prefix: str | None = None

    def tag(self, connection_id: int | str | None) -> str:
        return f"{self.prefix}_{connection_id}"

    async def on_checkout(self, ev: ConnectionEvent) -> None:
        if self.prefix is not None:
            await driver_sql(ev.connection, self.tag_sql.format(tag=self.tag(ev.connection_id)))

    async def on_checkin(self, ev: ConnectionEvent) -> None:
        await driver_sql(ev.connection, self.untag_sql)


def _new_prefix() -> str:
    return f"pbtag_{uuid.uuid4().hex[:8]}"


async def _server_app_name(s: Session, sid: int | str | None) -> str | None:
    """pg_stat_activity.application_name of a connection, read by the admin connection."""
    rows = await s.admin.fetch(
        f"SELECT application_name FROM pg_stat_activity WHERE pid = {int(str(sid))}"
    )
    return str(rows[0][0]) if rows else None


async def _checkout_tag(s: Session) -> None:
    tagger = Tagger(s.backend)
    pool = await open_hooked(s, s.config(min_size=1, max_size=2), on_checkout=tagger.on_checkout)

    async def tagged(run: Any, i: int) -> int | str | None:
        sid = await s.server_id(run)
        want = tagger.tag(sid)
        seen = await run(tagger.probe)
        assert seen == want, f"connection {sid}: the session shows {seen!r}, not {want!r}"
        if s.backend == "postgresql":
            shown = await _server_app_name(s, sid)
            assert shown == want, f"pg_stat_activity shows {shown!r} for {sid}, not {want!r}"
        return sid

    seen: set[int | str | None] = set()
    for r in range(2):  # the warm connection and a second one, held together; then reused
        tagger.prefix = _new_prefix()
        seen.update(await together(s, pool, 2, tagged, first=2 * r))
    assert len(seen) == 2, seen
    _no_hook_failures(pool)


@pytest.mark.poolbridge_requirement("hook_checkout_tag")
def test_on_checkout_tags_the_session(poolbridge_case: Case) -> None:
    poolbridge_case.run(_checkout_tag)


async def _checkin_reset(s: Session) -> None:
    tagger = Tagger(s.backend)
    pool = await open_hooked(
        s,
        s.config(min_size=1, max_size=1),
        on_checkout=tagger.on_checkout,
        on_checkin=tagger.on_checkin,
    )
    async with s.use(pool) as run:
        pristine = await run(tagger.probe)
        sid = await s.server_id(run)
    for i in range(3):
        tagger.prefix = _new_prefix()
        want = tagger.tag(sid)
        async with s.use(pool) as run:
            tagger.prefix = None
            assert await s.server_id(run) == sid, "max_size=1: always the same connection"
            assert await run(tagger.probe) == want
            if i % 2:
                # a caller that leaves its transaction open: the untag must still stick
                with contextlib.suppress(Exception):
                    await run("BEGIN")
                await run("SELECT 1")
        if s.backend == "postgresql":

            async def untagged() -> bool:
                return bool(await _server_app_name(s, sid) == pristine)

            assert await s.wait_for(untagged, timeout=2.0), (
                f"use {i + 1}: pg_stat_activity still shows {await _server_app_name(s, sid)!r} "
                f"after checkin, not {pristine!r}"
            )
        async with s.use(pool) as run:  # the next user of the same connection, untagged
            assert await s.server_id(run) == sid
            seen = await run(tagger.probe)
            assert seen == pristine, f"use {i + 1}: the next user saw the tag {seen!r}"
    _no_hook_failures(pool)


@pytest.mark.poolbridge_requirement("hook_checkin_reset")
@pytest.mark.poolbridge_entry_points
def test_on_checkin_resets_the_session(poolbridge_case: Case) -> None:
    poolbridge_case.run(_checkin_reset)
