"""The layout's dependency rules, read from the import statements of every module.

- ``config/``, ``pool/`` and ``engine/`` stand on the standard library (and ``errors``): they
  never import drivers, adapters, testing, metrics, integrations or the CLI.
- ``drivers/`` import those three layers and other driver modules, nothing above.
- each adapter package (``adapters/<stack>/``) imports the layers below, the shared adapter
  modules (``adapters/base.py``, ``_glue.py``, ...) and itself — never another adapter's
  package, the suite or the CLI. Shared adapter modules import no adapter package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import poolbridge

PACKAGE_DIR = Path(poolbridge.__file__).parent
ADAPTER_PACKAGES = ("sqlalchemy", "psycopg", "tortoise", "peewee_async")
LOWER = ("poolbridge.errors", "poolbridge.config", "poolbridge.pool", "poolbridge.engine")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _poolbridge_imports(path: Path) -> set[str]:
    """Every poolbridge module a file imports (relative imports resolved)."""
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                mod = ".".join([*base, *([node.module] if node.module else [])])
            else:
                mod = node.module or ""
            if mod.startswith("poolbridge"):
                out.add(mod)
                out.update(f"{mod}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("poolbridge"))
    return out


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _violations(folder: str, allowed: tuple[str, ...]) -> list[str]:
    problems = []
    for path in sorted((PACKAGE_DIR / folder).rglob("*.py")):
        for imported in sorted(_poolbridge_imports(path)):
            if imported == "poolbridge" or _within(imported, allowed):
                continue
            # `from poolbridge.config import model` names a submodule of an allowed package
            if _within(imported.rpartition(".")[0], allowed):
                continue
            problems.append(f"{_module_name(path)} imports {imported}")
    return problems


def test_config_pool_engine_import_only_lower_layers() -> None:
    problems = []
    for folder in ("config", "pool", "engine"):
        problems += _violations(folder, LOWER)
    assert not problems, "\n".join(problems)


def test_drivers_import_only_lower_layers() -> None:
    problems = _violations("drivers", (*LOWER, "poolbridge.drivers"))
    assert not problems, "\n".join(problems)


def test_no_adapter_package_imports_another() -> None:
    problems = []
    shared = tuple(
        f"poolbridge.adapters.{p.stem}"
        for p in (PACKAGE_DIR / "adapters").glob("*.py")
        if p.stem != "__init__"
    )
    for stack in ADAPTER_PACKAGES:
        allowed = (*LOWER, "poolbridge.drivers", *shared, f"poolbridge.adapters.{stack}")
        problems += _violations(f"adapters/{stack}", allowed)
    for path in sorted((PACKAGE_DIR / "adapters").glob("*.py")):
        for imported in _poolbridge_imports(path):
            if _within(imported, tuple(f"poolbridge.adapters.{s}" for s in ADAPTER_PACKAGES)):
                problems.append(f"shared {_module_name(path)} imports {imported}")
    assert not problems, "\n".join(problems)


def test_every_adapter_is_a_package_and_the_raw_ones_are_data() -> None:
    for stack in ADAPTER_PACKAGES:
        assert (PACKAGE_DIR / "adapters" / stack / "__init__.py").is_file(), stack
    assert (PACKAGE_DIR / "adapters" / "raw.py").is_file()
    assert (PACKAGE_DIR / "adapters" / "registry.py").is_file()


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    """Guard against a rule that can never fail."""
    probe = PACKAGE_DIR / "config" / "model.py"
    assert "poolbridge.errors" in _poolbridge_imports(probe) or any(
        i.startswith("poolbridge.config") for i in _poolbridge_imports(probe)
    )
    assert not _within("poolbridge.adapters.tortoise", LOWER)
