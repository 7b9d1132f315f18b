"""What every adapter's ``pool.rotate(password=...)`` shares.

Rotation replaces every connection of a pool without downtime (credential change,
failover, a DNS name that now points elsewhere). Each pool implementation marks its current
connections stale — idle ones are closed at once, checked-out ones when they come back —
and refills to ``min_size`` with new connections; callers keep being served throughout.
This module holds the pieces that do not depend on the pool: the new config with the new
password (``PoolConfig`` is frozen and hides ``password`` from repr) and the wait until the
pool has settled.

Core module: standard library only.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from time import monotonic

from poolbridge.config.model import PasswordProvider, PoolConfig
from poolbridge.errors import PoolTimeout, UnsupportedOptionError

__all__ = ["SQLITE_NO_PASSWORD", "settle", "with_password"]

#: why SQLite refuses a password, at open (drivers.base.SQLITE_REFUSED) and at rotate()
SQLITE_NO_PASSWORD = "SQLite has no server to authenticate to: there is no password"

#: seconds between two looks at the pool while waiting for it to settle
_POLL = 0.01


def with_password(
    config: PoolConfig, password: str | PasswordProvider | None, adapter: str | None = None
) -> PoolConfig:
    """``config`` with ``password`` (None: ``config`` itself, the password is kept).

    On SQLite a password raises UnsupportedOptionError (naming ``adapter``), as it does
    when set in the config at open: nothing is replaced for a knob that cannot apply.

    The new password lives only in the new config's ``password`` field, which repr, str,
    ``to_dict(redact=True)`` and every poolbridge message hide.
    """
    if password is None:
        return config
    if config.backend == "sqlite":  # as at open: SQLite refuses a password it cannot use
        raise UnsupportedOptionError(
            adapter or "sqlite",
            {"password": SQLITE_NO_PASSWORD},
        )
    if not isinstance(password, str) and not callable(password):
        raise TypeError(
            "rotate(password=...) takes a str or a sync/async callable returning one "
            f"(got {type(password).__name__})"
        )
    return dataclasses.replace(config, password=password)


async def settle(
    done: Callable[[], bool],
    *,
    config: PoolConfig,
    last_error: Callable[[], BaseException | None] = lambda: None,
) -> None:
    """Wait until ``done()`` (the pool replaced its idle connections and is back at
    min_size counting stale connections still checked out), up to ``acquire_timeout``.

    Raises PoolTimeout naming the last connection error when the pool did not get there
    (the new credentials may be wrong): the pool stays open and keeps trying.
    """
    deadline = monotonic() + config.acquire_timeout
    while not done():
        if monotonic() >= deadline:
            err = last_error()
            why = f" (last connection error: {type(err).__name__})" if err is not None else ""
            raise PoolTimeout(
                f"pool {config.name!r}: rotate() could not open min_size={config.min_size} "
                f"new connection(s) within acquire_timeout={config.acquire_timeout:g} s{why}"
            ) from err
        await asyncio.sleep(_POLL)
