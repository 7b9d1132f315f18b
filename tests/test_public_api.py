"""The public API: every name in ``poolbridge.__all__`` exists and is documented in docs/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import poolbridge

DOCS = Path(__file__).resolve().parent.parent / "docs"


def docs_text() -> str:
    return "\n".join(p.read_text() for p in sorted(DOCS.glob("*.md")))


def test_all_is_unique_and_importable() -> None:
    names = poolbridge.__all__
    assert len(names) == len(set(names))
    for name in names:
        assert hasattr(poolbridge, name), name


@pytest.mark.parametrize("name", sorted(set(poolbridge.__all__) - {"__version__"}))
def test_every_public_name_is_documented(name: str) -> None:
    assert re.search(rf"\b{re.escape(name)}\b", docs_text()), (
        f"{name} is not mentioned in docs/*.md"
    )


def test_load_is_the_loader() -> None:
    from poolbridge.config.loaders import load

    assert poolbridge.load is load
    assert poolbridge.PoolConfig.from_env.__doc__


def test_open_pool_has_a_typed_overload_per_builtin_adapter() -> None:
    """``open_pool(cfg, adapter="asyncpg")`` is typed by the name; any other str gives
    Pool[Any]."""
    import inspect
    import typing

    from poolbridge.adapters.registry import BUILTIN_ADAPTERS

    found = {}
    for overload in typing.get_overloads(poolbridge.open_pool):
        hint = str(inspect.signature(overload).parameters["adapter"].annotation)
        returns = str(inspect.signature(overload).return_annotation)
        match = re.fullmatch(r"Literal\[['\"](\w+)['\"]\]", hint)
        found[match.group(1) if match else hint] = returns
    typed = set(BUILTIN_ADAPTERS) - {"tortoise", "peewee_async"}  # connection type varies
    assert typed <= set(found), f"no overload for {sorted(typed - set(found))}"
    assert all("Any" not in found[name] for name in typed if name != "psycopg"), found
    assert found["str"] == "PoolOpener[Pool[Any]]"
