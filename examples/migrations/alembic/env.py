"""Alembic environment reading the SAME poolbridge config as the application.

    cd examples/migrations/alembic && alembic upgrade head

The engine comes from ``poolbridge.adapters.sqlalchemy.create_async_engine``, so migrations
run with the app's limits (statement_timeout, session settings, password provider...), and
``DATABASE_URL`` / ``POOLBRIDGE_*`` variables override the file exactly as they do for the app.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from alembic import context
from sqlalchemy.engine import Connection

import poolbridge
from poolbridge.adapters.sqlalchemy import close_engine, create_async_engine, warm_up

CONFIG_FILE = Path(__file__).resolve().parent.parent / "poolbridge.toml"
target_metadata = None  # an app would import its models' MetaData here


def do_run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # renamable so that parallel test runs do not share a version table
        version_table=os.environ.get("ALEMBIC_VERSION_TABLE", "alembic_version"),
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    config = poolbridge.load(path=CONFIG_FILE, name="alembic")
    engine = await warm_up(create_async_engine(config))
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
            await connection.commit()
    finally:
        await close_engine(engine)


if context.is_offline_mode():
    raise SystemExit("offline mode is not used in this example: run `alembic upgrade head`")
asyncio.run(run_async_migrations())
