"""Which build of the pool engine runs: pure Python or compiled with mypyc.

``COMPILED_MODULES`` is the one list of the modules the compiled build compiles: the wheel's
build hook (``hatch_build.py``) and ``make compiled-test`` read it. Both builds behave the
same; the compiled one only runs the checkout/checkin path faster (docs/performance.md).
Standard library only, and nothing here imports the modules it reports on.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util

__all__ = ["COMPILED_MODULES", "build_name", "compiled_modules"]

#: the engine's checkout/checkin path and the modules it calls on every acquire (the
#: drivers' state checks included)
COMPILED_MODULES: tuple[str, ...] = (
    "poolbridge.drivers.state",
    "poolbridge.engine.checkout",
    "poolbridge.engine.lifecycle",
    "poolbridge.pool.lifetime",
    "poolbridge.pool.stats",
    "poolbridge.pool.waiters",
)


def _is_extension(module: str) -> bool:
    """True when importing ``module`` loads (or loaded) an extension module."""
    spec = importlib.util.find_spec(module)
    origin = spec.origin if spec is not None else None
    return origin is not None and origin.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def compiled_modules() -> list[str]:
    """The modules of ``COMPILED_MODULES`` that this installation runs compiled."""
    return [m for m in COMPILED_MODULES if _is_extension(m)]


def build_name() -> str:
    """``"compiled (mypyc)"``, ``"pure Python"``, or which modules are compiled when only
    some are (a partial build: a broken install)."""
    done = compiled_modules()
    if not done:
        return "pure Python"
    if len(done) == len(COMPILED_MODULES):
        return "compiled (mypyc)"
    return f"partly compiled ({', '.join(done)})"
