"""The text of :class:`~poolbridge.errors.PoolTimeout`: one formatter for every pool.

poolbridge's engine, the SQLAlchemy queue pool and the hooked psycopg_pool all raise
PoolTimeout when no connection frees up within ``acquire_timeout``. The message is what a
user reads in a log at 3 a.m. to tell "pool too small" from "a task holds connections for
minutes", so it reads the same whichever stack produced it (docs/errors.md).
Pure formatting: callers collect the numbers, this module imports only the standard library.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["LONGEST_SHOWN", "pool_timeout_message"]

#: how many held-connection ages the message lists (longest first)
LONGEST_SHOWN = 3


def pool_timeout_message(
    name: str,
    *,
    adapter: str,
    acquire_timeout: float,
    max_size: int,
    in_use: int,
    waiting: int,
    held_ages: Iterable[float],
    idle: int | None = None,
    opening: int | None = None,
    waited: float | None = None,
    last_error: BaseException | None = None,
) -> str:
    """One line describing an exhausted pool.

    ``waiting`` counts the callers waiting for a connection when the timeout fired, this
    caller included; ``held_ages`` are the seconds each checked-out connection has been
    held (any order: the longest :data:`LONGEST_SHOWN` are listed). ``idle``, ``opening``
    and ``waited`` (seconds this caller waited) appear when the pool knows them;
    ``last_error`` is named by its type only, since its text may carry connection details.

    >>> pool_timeout_message("api", adapter="asyncpg", acquire_timeout=1.0, max_size=2,
    ...                      in_use=2, waiting=1, held_ages=[0.5, 12.25])
    "pool 'api' (asyncpg) timed out after acquire_timeout=1.0s: max_size=2, in use=2, \
waiting=1, longest held=12.25s, 0.50s"
    """
    longest = sorted(held_ages, reverse=True)[:LONGEST_SHOWN]
    parts = [f"max_size={max_size}", f"in use={in_use}"]
    if idle is not None:
        parts.append(f"idle={idle}")
    if opening is not None:
        parts.append(f"opening={opening}")
    parts.append(f"waiting={waiting}")
    parts.append("longest held=" + (", ".join(f"{age:.2f}s" for age in longest) or "none"))
    text = (
        f"pool {name!r} ({adapter}) timed out after acquire_timeout={acquire_timeout}s: "
        + ", ".join(parts)
    )
    if waited is not None:
        text += f"; waited {waited:.2f}s"
    if last_error is not None:
        text += f"; last connection error: {type(last_error).__name__}"
    return text
