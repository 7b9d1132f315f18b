"""Generate docs/adapters/<name>.md from each adapter's own ``translate()`` table.

    python -m poolbridge.cli.docs_gen            # rewrite the generated pages
    python -m poolbridge.cli.docs_gen --check    # exit 1 when a page is out of date (CI, tests)

For every knob the generator translates a baseline config and the same config with only
that knob changed, per driver, and reports what the adapter said: the native arguments that
changed (dotted paths into the native kwargs), how poolbridge emulates it, or why it is not
supported. So the tables are the adapters' data, not prose that can drift.

The Tortoise and peewee-async pages are narrative pages written by hand, each with its own
generated table between ``translation-table`` markers (tested by their own tests); this
generator leaves them alone and only links to them from docs/adapters/index.md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "HAND_WRITTEN",
    "KNOB_SAMPLES",
    "adapter_page",
    "generate",
    "knob_cell",
    "main",
    "vocabulary_table",
]

#: adapters whose page is hand-written (with their own generated table inside)
HAND_WRITTEN = ("tortoise", "peewee_async")

#: a non-default value per knob: the baseline config differs from the sample in that knob only
KNOB_SAMPLES: dict[str, Any] = {
    "min_size": 2,
    "max_size": 7,
    "acquire_timeout": 7.0,
    "connect_timeout": 7.0,
    "statement_timeout": 7.0,
    "max_lifetime": 777.0,
    "max_idle": 77.0,
    "pre_ping": True,
    "max_waiting": 7,
    "reset": "full",
    "statement_cache": False,
    "isolation_level": "serializable",
    "session": {"search_path": "app"},
    "ssl": "require",
    "password": "sample-secret",
    "leak_timeout": 7.0,
    "retry": {"attempts": 5},
    "name": "generated",
    "hosts": ["127.0.0.1:5432", "127.0.0.2:5433"],
    "target_session_attrs": "read-write",
    "load_balance_hosts": "random",
    "host_recheck_interval": 7.0,
}

_SAMPLE_URLS = {
    "postgresql": "postgresql://app@127.0.0.1:5432/app",
    "mysql": "mysql://app@127.0.0.1:3306/app",
    "sqlite": "sqlite:///app.db",
}
_BEGIN = "<!-- BEGIN GENERATED TABLE -->"
_END = "<!-- END GENERATED TABLE -->"


def _diff(a: Any, b: Any, path: str = "") -> list[str]:
    """Dotted paths where two native kwargs structures differ."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        out: list[str] = []
        for key in sorted({*a, *b}, key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in a or key not in b:
                out.append(sub)
            else:
                out.extend(_diff(a[key], b[key], sub))
        return out
    try:
        same = bool(a == b)
    except Exception:  # objects without a sensible == (SSL contexts, callables)
        same = a is b
    return [] if same else [path or "(value)"]


def knob_cell(adapter: Any, backend: str, driver: str, knob: str) -> str:
    """What ``adapter`` does with ``knob`` on ``driver``, as one Markdown table cell."""
    from poolbridge.config.model import PoolConfig
    from poolbridge.config.redact import redact_text
    from poolbridge.errors import PoolBridgeError

    base_kwargs: dict[str, Any] = {"url": _SAMPLE_URLS[backend], "driver": driver}
    try:
        base = adapter.translate(PoolConfig(**base_kwargs))
        changed = adapter.translate(PoolConfig(**base_kwargs, **{knob: KNOB_SAMPLES[knob]}))
    except PoolBridgeError as exc:  # refused outright for this driver
        return f"**no**: {_one_line(redact_text(str(exc)))}"
    if knob in changed.unsupported:
        return f"**no**: {_one_line(changed.unsupported[knob])}"
    parts: list[str] = []
    native = _diff(base.native, changed.native)  # paths only: values (passwords) never shown
    if native:
        parts.append(", ".join(f"`{p}`" for p in native))
    if knob in changed.emulated:
        parts.append("poolbridge: " + _one_line(changed.emulated[knob]).removeprefix("emulated: "))
    return "; ".join(parts) or "-"


def _one_line(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _columns(adapter: Any) -> list[tuple[str, str]]:
    return [(b, d) for b, drivers in adapter.drivers.items() for d in drivers]


def translation_table(adapter: Any) -> str:
    """The Markdown table: one row per knob, one column per backend/driver."""
    cols = _columns(adapter)
    head = "| knob | " + " | ".join(f"{d} ({b})" for b, d in cols) + " |"
    rows = [head, "|---|" + "---|" * len(cols)]
    for knob in KNOB_SAMPLES:
        cells = [knob_cell(adapter, b, d, knob) for b, d in cols]
        rows.append(f"| `{knob}` | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _closed_rows(adapter: Any) -> list[str]:
    """The rows the adapter closes (its ``closed_requirements``, and the high-availability
    rows where its table refuses the knobs), rows sharing one reason on one line."""
    from poolbridge.testing.requirements import BACKEND_CLOSED, adapter_closed

    lines: list[str] = []
    for backend, driver in _columns(adapter):
        by_reason: dict[str, list[str]] = {}
        for name, why in adapter_closed(adapter, backend, driver).items():
            if name not in BACKEND_CLOSED.get(backend, {}):
                by_reason.setdefault(_one_line(why), []).append(f"`{name}`")
        for why, names in by_reason.items():
            lines.append(f"- {', '.join(names)} on {backend} ({driver}): {why}")
    return lines


def adapter_page(name: str) -> str:
    """The whole generated page of adapter ``name``."""
    import importlib

    from poolbridge.adapters.registry import BUILTIN_ADAPTERS, get_adapter

    adapter = get_adapter(name)
    module_name, _, attribute = BUILTIN_ADAPTERS[name].partition(":")
    # a module holding several adapters describes each in its class docstring
    described = type(adapter) if attribute else importlib.import_module(module_name)
    intro = (described.__doc__ or "").strip().split("\n\n")[0]
    closed = _closed_rows(adapter) or ["- none: every row of the suite is open"]
    # an adapter may add hand-written sections (Markdown) after the generated ones
    notes = str(getattr(adapter, "doc_notes", "") or "").strip()
    return "\n".join(
        [
            f"<!-- generated by `python -m poolbridge.cli.docs_gen` from "
            f"`{module_name}`: do not edit -->",
            f"# Adapter `{name}`",
            "",
            " ".join(intro.split()),
            "",
            f"Install: `pip install 'poolbridge[{adapter.extra}]'`. Use: "
            f'`poolbridge.open_pool(config, adapter="{name}")`.',
            "",
            "## Translation table",
            "",
            "Per knob: the native arguments it changes (paths into the keyword arguments "
            "given to the stack), what poolbridge provides itself, or **no** with the reason "
            "(an explicitly set unsupported knob raises `UnsupportedOptionError`).",
            "",
            _BEGIN,
            translation_table(adapter),
            _END,
            "",
            "## Closed conformance rows",
            "",
            *closed,
            "",
            *([notes, ""] if notes else []),
        ]
    )


def vocabulary_table() -> str:
    """The builder, opener, handle and ORM-named entry points of every built-in adapter,
    read from each adapter's package (its verbs, ``ORM_ENTRY_POINTS`` and ``HANDLE_ACCESS``)."""
    import importlib

    from poolbridge.adapters.base import ADAPTER_VERBS
    from poolbridge.adapters.registry import BUILTIN_ADAPTERS

    rows = [
        "| adapter | builder | opener (uniform handle) | handle of the ORM's object "
        "| ORM-named entry points |",
        "|---|---|---|---|---|",
    ]
    for name, target in BUILTIN_ADAPTERS.items():
        module_name = target.partition(":")[0]
        module = importlib.import_module(module_name)
        generic = f'`poolbridge.open_pool(config, adapter="{name}")`'
        if not all(hasattr(module, verb) for verb in ADAPTER_VERBS):
            rows.append(f"| `{name}` | — (the pool is poolbridge's engine) | {generic} | — | — |")
            continue
        access = getattr(module, "HANDLE_ACCESS", None)
        handle = f"`{access}`" if access else "—"
        orm = ", ".join(f"`{e}`" for e in getattr(module, "ORM_ENTRY_POINTS", ())) or "—"
        rows.append(
            f"| `{name}` | `{module_name}.native_arguments(config)` | "
            f"`{module_name}.open_pool(config, hooks=)`, or {generic} | {handle} | {orm} |"
        )
    return "\n".join(rows)


def index_page() -> str:
    """docs/adapters/index.md: every built-in adapter with its drivers and page."""
    from poolbridge.adapters.registry import BUILTIN_ADAPTERS, get_adapter

    rows = ["| adapter | extra | drivers | page |", "|---|---|---|---|"]
    for name in BUILTIN_ADAPTERS:
        adapter = get_adapter(name)
        drivers = ", ".join(f"{d} ({b})" for b, d in _columns(adapter))
        rows.append(f"| `{name}` | `{adapter.extra}` | {drivers} | [{name}.md]({name}.md) |")
    return "\n".join(
        [
            "<!-- generated by `python -m poolbridge.cli.docs_gen`: do not edit -->",
            "# Adapters",
            "",
            "One page per adapter. The translation tables are generated from each adapter's "
            "own `translate()` (`python -m poolbridge.cli.docs_gen`; `tests/test_docs.py` fails "
            "when a page is out of date). The Tortoise and peewee-async pages are written by "
            "hand around their generated tables.",
            "",
            "**An adapter changes what the PoolConfig sets, and nothing else.** Pool knobs keep "
            "poolbridge's defaults; everything else (every credential key, connect keyword, "
            "session setting, error class, class identity and pool attribute the ORM or its "
            "users read) behaves as it does with the stock stack. Where poolbridge cannot keep "
            "a stock behaviour it refuses loudly (`UnsupportedOptionError` naming the key), "
            "never silently; where the stock stack silently discards part of a setting, "
            "poolbridge says so (`UnsupportedOptionWarning`). Where a stock safety behaviour "
            "matters and a poolbridge default would remove it, the field is tri-state: "
            "`pre_ping` left unset (None) does what the stack does stock (Tortoise's psycopg "
            "client checks every connection on checkout); an explicit value wins.",
            "",
            *rows,
            "",
            "## One vocabulary",
            "",
            "Every adapter package has the same two verbs. The **builder** "
            "`native_arguments(config)` returns the keyword arguments of the stack's own "
            "constructor (`sqlalchemy.ext.asyncio.create_async_engine(**kw)`, "
            "`Tortoise.init(config=kw)`, `PostgresqlDatabase(**kw)`, "
            "`psycopg_pool.AsyncConnectionPool(**kw)`). The **opener** "
            "`open_pool(config, hooks=None)` returns the uniform handle (`await` it, or "
            "`async with` it to close on exit): `acquire()`, `stats()`, `rotate()`, "
            "`close()`, and `.native`, the ORM's own object. Both take a PoolConfig or a URL "
            "with the pool options in its query. The entry points named after the ORM's own "
            "behave like them (`create_async_engine` is synchronous and returns an "
            "`AsyncEngine`) and expose the handle: `handle_of(engine)`, `handle_of(db)`, "
            "the handles `init()` returns.",
            "",
            vocabulary_table(),
            "",
            "Third-party adapters: see [the conformance page](../conformance.md#writing-a-"
            "third-party-adapter).",
            "",
        ]
    )


def generate(root: Path) -> dict[Path, str]:
    """Every generated page under ``root`` (the repository) with its expected content."""
    from poolbridge.adapters.registry import BUILTIN_ADAPTERS

    out = {root / "docs" / "adapters" / "index.md": index_page()}
    for name in BUILTIN_ADAPTERS:
        if name not in HAND_WRITTEN:
            out[root / "docs" / "adapters" / f"{name}.md"] = adapter_page(name)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m poolbridge.cli.docs_gen", description=__doc__)
    parser.add_argument("--root", default=".", help="repository root (default: .)")
    parser.add_argument("--check", action="store_true", help="exit 1 if a page is stale")
    ns = parser.parse_args(argv)
    stale = []
    for path, text in generate(Path(ns.root)).items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(path)
        if not ns.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    for path in stale:
        print(f"{'stale' if ns.check else 'wrote'}: {path}")
    return 1 if (ns.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
