"""DESIGN: "adapters import core (and their own ORM, lazily), never each other".

Every module under ``poolbridge/adapters`` belongs to one adapter (``sqlalchemy.py`` and
``_sqlalchemy_*.py``, ``tortoise.py`` and ``_tortoise_*.py``...) or is shared glue (``base``,
``_glue``, ``_rows``, ``_doctable``, the engine-backed pieces); what two adapters need lives
in a shared module (``poolbridge.drivers._psycopg`` / ``._psycopg_pool`` for the psycopg
layer under Tortoise and peewee-async). No adapter imports another adapter's modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import poolbridge.adapters as adapters_pkg

ADAPTERS_DIR = Path(adapters_pkg.__file__).parent
OWNERS = ("psycopg", "sqlalchemy", "tortoise", "peewee", "asyncpg", "aiomysql", "asyncmy",
          "aiopg", "aiosqlite")  # fmt: skip


def _owner(module: str) -> str | None:
    """The adapter a module of poolbridge.adapters belongs to (None: shared)."""
    stem = module.lstrip("_")
    for owner in OWNERS:
        if stem == owner or stem.startswith(owner + "_") or stem == f"{owner}_async":
            return owner
    return None


def _imported_adapter_modules(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level == 1:  # from .x import ... / from . import x
                names = [mod] if mod else [a.name for a in node.names]
                out.update(n.split(".")[0] for n in names)
            elif node.level == 0 and mod.startswith("poolbridge.adapters."):
                out.add(mod.split(".")[2])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("poolbridge.adapters."):
                    out.add(alias.name.split(".")[2])
    return out


def test_no_adapter_imports_another_adapters_modules() -> None:
    problems = []
    for path in sorted(ADAPTERS_DIR.glob("*.py")):
        me = _owner(path.stem)
        for imported in _imported_adapter_modules(path):
            other = _owner(imported)
            if other is not None and other != me:
                problems.append(f"{path.name} ({me or 'shared'}) imports {imported} ({other})")
    assert not problems, "\n".join(problems)


def test_owner_classification() -> None:
    assert _owner("_psycopg_handle") == "psycopg"
    assert _owner("peewee_async") == "peewee"
    assert _owner("_peewee_backend") == "peewee"
    assert _owner("_tortoise_table") == "tortoise"
    assert _owner("_doctable") is None and _owner("_engine_backed") is None


def test_drivers_never_import_adapters() -> None:
    """The layer under the adapters (``poolbridge.drivers``) stands on core alone: a shared
    driver module that imported an adapter would tie every adapter to that one."""
    drivers_dir = ADAPTERS_DIR.parent / "drivers"
    problems = []
    for path in sorted(drivers_dir.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                mod = node.module or ""
                up = node.level == 2 and (mod == "adapters" or mod.startswith("adapters."))
                up = up or (
                    node.level == 2 and not mod and any(a.name == "adapters" for a in node.names)
                )
                absolute = node.level == 0 and mod.startswith("poolbridge.adapters")
                if up or absolute:
                    problems.append(f"{path.name} imports {'.' * node.level}{mod}")
    assert not problems, "\n".join(problems)
    assert (drivers_dir / "_psycopg_pool.py").exists()
