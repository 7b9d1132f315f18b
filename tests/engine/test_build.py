"""Which build of the engine runs is reported truthfully, from the one module list.

`make compiled-test` runs tests/engine on the compiled build with
POOLBRIDGE_EXPECT_COMPILED=1 (tests/conftest.py refuses to start when a listed module would
be imported from source); here each imported module is checked as well.
"""

from __future__ import annotations

import importlib
import importlib.machinery

import hatch_build

import poolbridge.engine
from poolbridge.engine.build import COMPILED_MODULES, build_name, compiled_modules
from tests.conftest import EXPECT_COMPILED

EXTENSIONS = tuple(importlib.machinery.EXTENSION_SUFFIXES)


def test_the_build_hook_compiles_the_listed_modules() -> None:
    assert hatch_build.compiled_modules() == COMPILED_MODULES
    assert "poolbridge.engine.checkout" in COMPILED_MODULES
    # a Protocol must stay a Protocol at runtime: the shim protocol is never compiled
    assert "poolbridge.engine.shim" not in COMPILED_MODULES


def test_reported_build_is_the_imported_one() -> None:
    loaded = {m: importlib.import_module(m).__file__ or "" for m in COMPILED_MODULES}
    compiled = [m for m, path in loaded.items() if path.endswith(EXTENSIONS)]
    assert compiled_modules() == compiled, loaded
    assert poolbridge.engine.COMPILED is (len(compiled) == len(COMPILED_MODULES))
    assert build_name() == ("compiled (mypyc)" if poolbridge.engine.COMPILED else "pure Python")
    if EXPECT_COMPILED:
        assert poolbridge.engine.COMPILED, loaded
        # compiled classes are native: no instance __dict__ (what rules out monkeypatching)
        from poolbridge.engine.checkout import Engine

        assert "__dict__" not in dir(Engine), Engine
