"""Find adapters by name: the built-ins, then the ``poolbridge.adapters`` entry points.

Adapter modules are imported only when asked for, so the core and the CLI never import an
ORM they do not need.
"""

from __future__ import annotations

import importlib
import importlib.util
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from poolbridge.errors import AdapterNotAvailable

if TYPE_CHECKING:
    from poolbridge.adapters.base import Adapter

__all__ = ["BUILTIN_ADAPTERS", "adapter_names", "get_adapter"]

#: name -> "module:attribute" of its Adapter instance (the attribute defaults to ``adapter``)
BUILTIN_ADAPTERS: dict[str, str] = {
    "sqlalchemy": "poolbridge.adapters.sqlalchemy",
    "psycopg": "poolbridge.adapters.psycopg",
    "asyncpg": "poolbridge.adapters.raw:asyncpg",
    "aiomysql": "poolbridge.adapters.raw:aiomysql",
    "asyncmy": "poolbridge.adapters.raw:asyncmy",
    "aiopg": "poolbridge.adapters.raw:aiopg",
    "aiosqlite": "poolbridge.adapters.raw:aiosqlite",
    "tortoise": "poolbridge.adapters.tortoise",
    "peewee_async": "poolbridge.adapters.peewee_async",
}


def _split(target: str) -> tuple[str, str]:
    module, _, attribute = target.partition(":")
    return module, attribute or "adapter"


ENTRY_POINT_GROUP = "poolbridge.adapters"


def _third_party() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def adapter_names(*, installed_only: bool = False) -> list[str]:
    """Names of every known adapter (built-in modules that exist, plus entry points)."""
    names = [
        n for n in BUILTIN_ADAPTERS if importlib.util.find_spec(_split(BUILTIN_ADAPTERS[n])[0])
    ]
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
    target = BUILTIN_ADAPTERS.get(name)
    if target is not None:
        module_name, attribute = _split(target)
        if importlib.util.find_spec(module_name) is not None:
            adapter: Adapter = getattr(importlib.import_module(module_name), attribute)
            return adapter
    third = _third_party()
    if name in third:
        obj = third[name].load()
        loaded: Adapter = obj() if isinstance(obj, type) else obj
        return loaded
    known = ", ".join(sorted({*BUILTIN_ADAPTERS, *third}))
    raise AdapterNotAvailable(f"no poolbridge adapter named {name!r} (known: {known})")
