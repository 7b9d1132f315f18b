"""The psycopg_pool subclass shared by the psycopg adapter, Tortoise's psycopg client and
peewee-async's Psycopg3Database (poolbridge's hooks, stats, leak tracking and errors inside a
real ``psycopg_pool.AsyncConnectionPool``), under a name that belongs to none of them.

The implementation still lives in ``poolbridge/adapters/_psycopg_pool.py`` (with its
``_psycopg_watchdog.py``): it is re-exported here so that the adapters import this shared
module and never each other's. Moving the two files here is a plain ``git mv`` once nobody
has uncommitted edits in them.
"""

from __future__ import annotations

from ..adapters._psycopg_pool import (
    PBConnectionPool,
    PoolClosed,
    PoolTimeout,
    PsycopgHolder,
    TooManyRequests,
)

__all__ = ["PBConnectionPool", "PoolClosed", "PoolTimeout", "PsycopgHolder", "TooManyRequests"]
