"""``poolbridge config show`` and ``poolbridge config schema``.

``config show`` resolves a pool exactly like :func:`poolbridge.load` and prints every value
(redacted) with its source; with ``--adapter`` it adds each adapter's translation table.
Nothing printed here may contain a secret: every value goes through
:mod:`poolbridge.config.redact` (masking by structure: URL userinfo and secret-named keys at
any depth), and the whole output through a last structural pass (URLs, ``password=...``).
"""

from __future__ import annotations

import argparse
import json
import warnings
from typing import Any

from poolbridge.cli import arg, group, subcommand
from poolbridge.config.loaders import LoadedConfig, Source, resolve
from poolbridge.config.model import PoolConfig
from poolbridge.config.redact import redact_mapping, redact_text
from poolbridge.config.schema import json_schema
from poolbridge.errors import AdapterNotAvailable, UnsupportedOptionError

__all__ = ["adapter_report", "config_schema", "config_show"]


group("config", help="show the effective pool configuration, or its JSON Schema")


@subcommand(
    "config show",
    help="print the effective pool config (redacted) and where each value came from",
    args=[
        arg("--config", metavar="FILE", help="TOML file (default: $POOLBRIDGE_CONFIG, "
            "./poolbridge.toml, else [tool.poolbridge] in ./pyproject.toml)"),
        arg("--pool", metavar="NAME", default="default", help="named pool (default: default)"),
        arg("--url", metavar="URL", help="database URL (beats file and environment)"),
        arg("--json", action="store_true", help="machine-readable output"),
        arg("--adapter", metavar="NAME|all", action="append",
            help="also show this adapter's translation (repeatable; 'all' for every one)"),
    ],
)  # fmt: skip
def config_show(ns: argparse.Namespace) -> int:
    """Print the effective config of one pool with the source of every value."""
    overrides = {"url": ns.url} if ns.url else None
    loaded = resolve(
        ns.pool, path=ns.config, overrides=overrides, overrides_source=Source("argument", "--url")
    )
    config = loaded.config
    adapters = _adapter_names(ns.adapter) if ns.adapter else []
    reports = {name: adapter_report(name, config) for name in adapters}
    if ns.json:
        out = json.dumps(_as_json(loaded, reports), indent=2, default=str)
    else:
        out = _as_text(loaded, reports)
    print(redact_text(out))
    return 1 if any(r.get("status") == "error" for r in reports.values()) else 0


@subcommand("config schema", help="print the JSON Schema of poolbridge.toml (for editors)")
def config_schema(ns: argparse.Namespace) -> int:
    """Print the JSON Schema of the TOML configuration."""
    print(json.dumps(json_schema(), indent=2))
    return 0


def _adapter_names(requested: list[str]) -> list[str]:
    from poolbridge.adapters.registry import adapter_names

    known = adapter_names()
    names: list[str] = []
    for name in requested:
        for n in known if name == "all" else [name]:
            if n not in names:
                names.append(n)
    return names


def adapter_report(name: str, config: PoolConfig) -> dict[str, Any]:
    """One adapter's translation of ``config`` as printable data (native kwargs redacted).

    ``status`` is ``ok``, ``unavailable`` (no such adapter, or its stack is not installed),
    ``unsupported`` (the config cannot be opened on it) or ``error`` (the adapter crashed).
    """
    from poolbridge.adapters.base import explicit_fields
    from poolbridge.adapters.registry import get_adapter

    report: dict[str, Any] = {"status": "ok"}
    try:
        adapter = get_adapter(name)
        try:
            report["driver"] = adapter.driver_for(config)
            adapter.check_available(config)
            report["installed"] = True
        except AdapterNotAvailable as exc:
            report["installed"] = False
            report["install_hint"] = str(exc)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            translation = adapter.translate(config)
    except AdapterNotAvailable as exc:
        return {"status": "unavailable", "reason": str(exc)}
    except UnsupportedOptionError as exc:
        return {"status": "unsupported", "reason": str(exc), "problems": exc.problems}
    except Exception as exc:  # a broken adapter must not hide the others
        return {"status": "error", "reason": f"{type(exc).__name__}: {exc}"}
    explicit = explicit_fields(config)
    report["native"] = redact_mapping(translation.native)
    report["emulated"] = dict(translation.emulated)
    report["unsupported"] = {
        k: {
            "reason": why,
            "at_open": "UnsupportedOptionError (set explicitly)"
            if k in explicit
            else "UnsupportedOptionWarning (left at its default)",
        }
        for k, why in translation.unsupported.items()
    }
    return report


def _rows(loaded: LoadedConfig) -> list[tuple[str, Any, Source]]:
    shown = loaded.config.to_dict(redact=True)
    retry = shown.pop("retry")
    rows = [(k, v, loaded.sources[k]) for k, v in shown.items()]
    rows += [(f"retry.{k}", v, loaded.sources[f"retry.{k}"]) for k, v in retry.items()]
    return rows


def _as_json(loaded: LoadedConfig, reports: dict[str, Any]) -> dict[str, Any]:
    config = loaded.config
    data: dict[str, Any] = {
        "pool": config.name,
        "file": str(loaded.file) if loaded.file else None,
        "config": config.to_dict(redact=True),
        "sources": {k: {"kind": s.kind, "detail": s.detail} for k, s in loaded.sources.items()},
        "driver_query": redact_mapping(dict(config.database_url.query)),
    }
    if reports:
        data["adapters"] = reports
    return data


def _fmt(value: Any) -> str:
    if isinstance(value, dict):
        return json.dumps(value, default=str) if value else "{}"
    return str(value)


def _as_text(loaded: LoadedConfig, reports: dict[str, Any]) -> str:
    config = loaded.config
    lines = [f"pool {config.name!r}" + (f" (file {loaded.file})" if loaded.file else "")]
    rows = [(k, _fmt(v), str(s)) for k, v, s in _rows(loaded)]
    width = min(max(len(v) for _, v, _ in rows), 60)
    lines.append(f"  {'field':<22}{'value':<{width}}  source")
    lines += [f"  {k:<22}{v:<{width}}  {s}" for k, v, s in rows]
    query = redact_mapping(dict(config.database_url.query))
    if query:
        kept = ", ".join(f"{k}={v}" for k, v in query.items())
        lines.append(f"driver query keys (kept in the URL for the driver): {kept}")
    for name, report in reports.items():
        lines.append("")
        lines += _adapter_text(name, report)
    return "\n".join(lines)


def _adapter_text(name: str, report: dict[str, Any]) -> list[str]:
    status = report["status"]
    if status != "ok":
        return [f"adapter {name}: {status}", *(f"  {ln}" for ln in report["reason"].splitlines())]
    head = f"adapter {name} (driver {report.get('driver')})"
    if not report.get("installed", True):
        head += f" - not installed: {report['install_hint']}"
    lines = [head, "  native:"]
    lines += [f"    {k} = {v!r}" for k, v in report["native"].items()] or ["    (none)"]
    lines.append("  emulated by poolbridge:")
    lines += [f"    {k}: {how}" for k, how in report["emulated"].items()] or ["    (none)"]
    lines.append("  unsupported:")
    lines += [
        f"    {k}: {u['reason']} -> {u['at_open']}" for k, u in report["unsupported"].items()
    ] or ["    (none)"]
    return lines
