"""Earlier import paths of public modules, kept working as aliases of their new homes.

``import poolbridge.core.config`` gives the very module object of ``poolbridge.config.model``
(same identity, every name), so code and saved configurations written against the earlier
layout — Tortoise connection dicts name their ``engine`` module by path — keep working.
Nothing inside poolbridge imports through these names.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Sequence

__all__ = ["ALIASES", "install"]

#: earlier dotted path -> current dotted path ("" = a bare package that only holds aliases)
ALIASES: dict[str, str] = {
    "poolbridge.core": "",
    "poolbridge.core.config": "poolbridge.config.model",
    "poolbridge.core.validate": "poolbridge.config.validate",
    "poolbridge.core.durations": "poolbridge.config.durations",
    "poolbridge.core.loaders": "poolbridge.config.loaders",
    "poolbridge.core.schema": "poolbridge.config.schema",
    "poolbridge.core.redact": "poolbridge.config.redact",
    "poolbridge.core.pool": "poolbridge.pool.handle",
    "poolbridge.core.hooks": "poolbridge.pool.hooks",
    "poolbridge.core.stats": "poolbridge.pool.stats",
    "poolbridge.core.leaks": "poolbridge.pool.leaks",
    "poolbridge.core.loopguard": "poolbridge.pool.loopguard",
    "poolbridge.core.rotation": "poolbridge.pool.rotation",
    "poolbridge.core.diagnostics": "poolbridge.pool.diagnostics",
    "poolbridge.core.deadlines": "poolbridge.pool.deadlines",
    "poolbridge.core.watchdog": "poolbridge.pool.watchdog",
    "poolbridge.core.retry": "poolbridge.pool.retry",
    "poolbridge.core.retrying": "poolbridge.pool.retrying",
    "poolbridge.core.budget": "poolbridge.pool.budget",
    "poolbridge.core.engine": "poolbridge.engine.checkout",
    "poolbridge.core.engine_core": "poolbridge.engine.lifecycle",
    "poolbridge.core.engine_pool": "poolbridge.engine.handle",
    "poolbridge.core.registry": "poolbridge.adapters.registry",
    "poolbridge.docs_gen": "poolbridge.cli.docs_gen",
    "poolbridge.adapters._tortoise_client": "poolbridge.adapters.tortoise.backends",
    "poolbridge.testing.embedded": "poolbridge.testing.servers.embedded",
    "poolbridge.testing.pgbouncer": "poolbridge.testing.servers.pgbouncer",
    "poolbridge.testing.proxy": "poolbridge.testing.servers.proxy",
    "poolbridge.testing.faults": "poolbridge.testing.servers.faults",
    "poolbridge.testing.fakes": "poolbridge.testing.servers.fakes",
}


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        if not self.target:
            package = types.ModuleType(spec.name, "Aliases of earlier poolbridge module paths.")
            package.__path__ = []
            return package
        return importlib.import_module(self.target)

    def exec_module(self, module: types.ModuleType) -> None:
        """The target module is already executed."""


class _AliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in ALIASES:
            return None
        new = ALIASES[fullname]
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(new), is_package=not new)


_FINDER = _AliasFinder()


def install() -> None:
    """Put the alias finder in front of the import system (once)."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
