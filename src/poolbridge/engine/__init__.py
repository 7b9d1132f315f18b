"""poolbridge's own pool engine: ``checkout`` (Engine), ``lifecycle`` (EngineCore),
``handle`` (EnginePool).

``COMPILED`` tells which build runs: True when the engine's hot path (the modules of
``build.COMPILED_MODULES``) is compiled with mypyc, False for pure Python. Both behave the
same; see docs/performance.md, "The compiled build".
"""

from __future__ import annotations

from poolbridge.engine.build import COMPILED_MODULES, build_name, compiled_modules

__all__ = ["COMPILED", "build_name"]

#: True when every module of the compiled build is loaded from its extension module
COMPILED: bool = len(compiled_modules()) == len(COMPILED_MODULES)
