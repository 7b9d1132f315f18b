"""Earlier module paths stay importable and give the very same module objects."""

from __future__ import annotations

import importlib

import pytest

from poolbridge._aliases import ALIASES


@pytest.mark.parametrize("old", sorted(k for k, v in ALIASES.items() if v))
def test_earlier_path_is_the_same_module(old: str) -> None:
    if "tortoise" in old:
        pytest.importorskip("tortoise")
    assert importlib.import_module(old) is importlib.import_module(ALIASES[old])


def test_from_import_through_an_alias() -> None:
    from poolbridge.core.config import PoolConfig as Old  # type: ignore[import-not-found]

    from poolbridge.config.model import PoolConfig

    assert Old is PoolConfig


def test_unknown_earlier_path_still_fails() -> None:
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("poolbridge.core.no_such_module")
