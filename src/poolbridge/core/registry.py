"""Find adapters by name: the built-ins, then the ``poolbridge.adapters`` entry points.

Adapter modules are imported only when asked for, so the core and the CLI never import an
ORM they do not need.
"""

from __future__ import annotations

import importlib
import importlib.util
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from ..errors import AdapterNotAvailable

if TYPE_CHECKING:
    from ..adapters.base import Adapter

__all__ = ["BUILTIN_ADAPTERS", "adapter_names", "get_adapter"]

#: name -> module defining ``adapter`` (an Adapter instance)
BUILTIN_ADAPTERS: dict[str, str] = {
    "sqlalchemy": "poolbridge.adapters.sqlalchemy",
    "psycopg": "poolbridge.adapters.psycopg",
    "asyncpg": "poolbridge.adapters.asyncpg",
    "aiomysql": "poolbridge.adapters.aiomysql",
    "asyncmy": "poolbridge.adapters.asyncmy",
    "aiopg": "poolbridge.adapters.aiopg",
    "aiosqlite": "poolbridge.adapters.aiosqlite",
    "tortoise": "poolbridge.adapters.tortoise",
    "peewee_async": "poolbridge.adapters.peewee_async",
}

ENTRY_POINT_GROUP = "poolbridge.adapters"


def _third_party() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def adapter_names(*, installed_only: bool = False) -> list[str]:
    """Names of every known adapter (built-in modules that exist, plus entry points)."""
    names = [n for n in BUILTIN_ADAPTERS if importlib.util.find_spec(BUILTIN_ADAPTERS[n])]
    names += [n for n in _third_party() if n not in BUILTIN_ADAPTERS]
    if installed_only:
        out = []
        for n in names:
            try:
                get_adapter(n).check_available()
            except AdapterNotAvailable:
                continue
            out.append(n)
        return out
    return names


def get_adapter(name: str) -> Adapter:
    """The adapter called ``name``; AdapterNotAvailable (with the known names) if none."""
    module_name = BUILTIN_ADAPTERS.get(name)
    if module_name is not None and importlib.util.find_spec(module_name) is not None:
        adapter: Adapter = importlib.import_module(module_name).adapter
        return adapter
    third = _third_party()
    if name in third:
        obj = third[name].load()
        loaded: Adapter = obj() if isinstance(obj, type) else obj
        return loaded
    known = ", ".join(sorted({*BUILTIN_ADAPTERS, *third}))
    raise AdapterNotAvailable(f"no poolbridge adapter named {name!r} (known: {known})")
