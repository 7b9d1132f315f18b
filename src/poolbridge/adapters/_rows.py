"""Reading the first value of a row, whatever shape the driver returns."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["first_value"]


def first_value(row: Any) -> Any:
    """First column of a row (tuple, dict, asyncpg Record, sqlite3.Row) or None."""
    if row is None:
        return None
    if isinstance(row, Mapping):
        return next(iter(row.values()), None)
    try:
        return row[0]
    except (KeyError, TypeError):
        return next(iter(dict(row).values()), None)
