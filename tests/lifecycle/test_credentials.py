"""A real credential change: the server account's password changes, the pool rotates.

MariaDB checks passwords here, so the MySQL stacks show the whole story: after ALTER USER
the old connections keep working, rotate() to a wrong password fails with PoolTimeout naming
the server's error (never the password), rotate() to the right one replaces every
connection. PostgreSQL on 127.0.0.1 trusts every client (pg_hba), so there the test runs
on a role with a password and checks which provider opened which connection and that every
backend pid changed. Accounts get a unique name and are dropped at the end.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from poolbridge.errors import PoolTimeout

from ._stacks import STACKS, Server, Stack, config, open_stack, pool_ids, scalar, url_for

pytestmark = pytest.mark.asyncio

OLD, NEW, WRONG = "pb-old-Secret-1", "pb-new-Secret-2", "pb-WRONG-Secret-3"

MYSQL = [pytest.param(s, id=s.id) for s in STACKS if s.backend == "mysql"]
POSTGRES = [pytest.param(s, id=s.id) for s in STACKS if s.backend == "postgresql"]


class Counting:
    def __init__(self, password: str) -> None:
        self.password = password
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        return self.password


@pytest_asyncio.fixture
async def account(request: pytest.FixtureRequest, stack: Stack) -> AsyncIterator[str]:
    """A login with password OLD; yields its URL (without the password)."""
    base = url_for(request, stack)
    name = f"pb_rot_{uuid.uuid4().hex[:10]}"
    async with Server(stack, base) as server:
        if stack.backend == "mysql":
            await server.execute(f"CREATE USER '{name}'@'127.0.0.1' IDENTIFIED BY '{OLD}'")
            await server.execute(f"GRANT SELECT ON test.* TO '{name}'@'127.0.0.1'")
            url = f"mysql://{name}@127.0.0.1:3306/test"
        else:
            await server.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{OLD}'")
            url = f"postgresql://{name}@127.0.0.1:5432/test"
        try:
            yield url
        finally:
            if stack.backend == "mysql":
                await server.execute(f"DROP USER IF EXISTS '{name}'@'127.0.0.1'")
            else:
                await server.execute(f"DROP ROLE IF EXISTS {name}")


def _no_secret(*texts: Any) -> None:
    for text in texts:
        for secret in (OLD, NEW, WRONG):
            assert secret not in str(text)


async def _current_user(stack: Stack, pool: Any) -> str:
    sql = "SELECT CURRENT_USER()" if stack.backend == "mysql" else "SELECT current_user"
    async with pool.acquire() as conn:
        return str(await scalar(stack, conn, sql))


@pytest.mark.parametrize("stack", MYSQL)
async def test_mysql_password_change(
    request: pytest.FixtureRequest, stack: Stack, account: str
) -> None:
    user = account.split("//")[1].split("@")[0]
    pool = await open_stack(stack, config(stack, account, password=OLD, acquire_timeout=2.0))
    try:
        async with Server(stack, url_for(request, stack)) as server:
            old = pool_ids(pool)
            assert len(old) == 2
            await server.execute(f"ALTER USER '{user}'@'127.0.0.1' IDENTIFIED BY '{NEW}'")
            assert (await _current_user(stack, pool)).startswith(user)  # old ones still work
            with pytest.raises(PoolTimeout) as failed:
                await pool.rotate(password=WRONG)
            assert "rotate()" in str(failed.value)
            assert failed.value.__cause__ is not None  # the server's access-denied error
            _no_secret(failed.value, repr(failed.value.__cause__), repr(pool), pool.config)
            _no_secret(pool.config.to_dict(redact=True))
            provider = Counting(NEW)
            await pool.rotate(password=provider)
            assert provider.calls >= 2
            assert (await _current_user(stack, pool)).startswith(user)
            new = pool_ids(pool)
            assert new and not new & old
            assert await server.alive(new) == new
    finally:
        await pool.close(timeout=5)


@pytest.mark.parametrize("stack", POSTGRES)
async def test_postgres_role_rotation(
    request: pytest.FixtureRequest, stack: Stack, account: str
) -> None:
    user = account.split("//")[1].split("@")[0]
    before = Counting(OLD)
    pool = await open_stack(stack, config(stack, account, password=before))
    try:
        async with Server(stack, url_for(request, stack)) as server:
            old = pool_ids(pool)
            assert len(old) == 2 and before.calls == 2
            await server.execute(f"ALTER ROLE {user} PASSWORD '{NEW}'")
            after = Counting(NEW)
            await pool.rotate(password=after)
            assert await _current_user(stack, pool) == user
            new = pool_ids(pool)
            assert len(new) == 2 and not new & old
            assert after.calls == 2 and before.calls == 2
            assert await server.alive(new) == new
            _no_secret(repr(pool), pool.config, pool.config.to_dict(redact=True))
    finally:
        await pool.close(timeout=5)
