"""Build a PoolConfig from a URL, a dict, the environment or TOML, and say where values came from.

Precedence (highest first): explicit arguments > environment > file > defaults. Pool options
in a URL query count at the level the URL came from and beat the other fields of that level.
Within the file and within the environment, a named pool's own keys beat the shared ones
(``[pools.replica]`` over the top level, ``POOLBRIDGE_REPLICA__X`` over ``POOLBRIDGE_X``).

Internally every level is a flat ``{key: (value, Source)}`` dict where ``retry`` is spread
into ``retry.<field>`` keys, so that e.g. ``POOLBRIDGE_RETRY_ATTEMPTS`` overrides only the
attempts of a ``[retry]`` table from the file.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from poolbridge.config.hosts import split_url_hosts
from poolbridge.config.model import (
    FIELD_NAMES,
    RETRY_FIELDS,
    URL_OPTION_NAMES,
    PoolConfig,
    RetryPolicy,
    suggest,
)
from poolbridge.config.url_rules import structure_problems
from poolbridge.config.validate import parse_mapping, show, split_url_options
from poolbridge.errors import ConfigError

__all__ = [
    "ENV_PREFIX",
    "LoadedConfig",
    "Source",
    "find_config_file",
    "from_dict",
    "from_env",
    "from_url",
    "load",
    "resolve",
]

ENV_PREFIX = "POOLBRIDGE_"
#: environment variable naming the config file when no path is given
CONFIG_ENV_VAR = "POOLBRIDGE_CONFIG"
_REF = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_FLAT_KEYS: tuple[str, ...] = tuple(n for n in FIELD_NAMES if n != "retry") + tuple(
    f"retry.{r}" for r in RETRY_FIELDS
)


@dataclass(frozen=True)
class Source:
    """Where a value came from: ``kind`` is default, file, env, url or argument."""

    kind: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.kind} {self.detail}".strip()


DEFAULT = Source("default")
Layer = dict[str, tuple[Any, Source]]


@dataclass(frozen=True)
class LoadedConfig:
    """A resolved config with the source of every value (keys as in ``_FLAT_KEYS``)."""

    config: PoolConfig
    sources: dict[str, Source] = field(default_factory=dict)
    file: Path | None = None


# -- simple loaders ---------------------------------------------------------------------------


def from_dict(data: Mapping[str, Any], *, source: str | None = None) -> PoolConfig:
    """Config from a mapping; unknown keys are ConfigError lines with a did-you-mean."""
    if not isinstance(data, Mapping):
        raise ConfigError([f"configuration must be a mapping (got {show(data)})"], source=source)
    problems = [suggest(k, FIELD_NAMES) for k in data if not isinstance(k, str)]
    kwargs = {k: v for k, v in data.items() if isinstance(k, str)}
    try:
        config = PoolConfig(**kwargs)
    except ConfigError as exc:
        raise ConfigError([*problems, *exc.problems], source=source) from None
    if problems:
        raise ConfigError(problems, source=source)
    return config


def from_url(url: str, **fields: Any) -> PoolConfig:
    """Config from a URL plus fields; pool options in the URL query beat ``fields``."""
    return PoolConfig(url=url, **fields)


def from_env(pool: str = "default", *, environ: Mapping[str, str] | None = None) -> PoolConfig:
    """Config from ``POOLBRIDGE_<FIELD>`` / ``POOLBRIDGE_<POOL>__<FIELD>`` only (no file)."""
    env = os.environ if environ is None else environ
    problems: list[str] = []
    generic, specific = _env_layers(pool, env, problems)
    return _build(pool, [_pool_name_layer(pool), generic, specific], None, problems).config


# -- the full resolution ----------------------------------------------------------------------


def load(
    pool: str = "default",
    *,
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    **overrides: Any,
) -> PoolConfig:
    """The config of ``pool`` from file, environment and ``overrides`` (see module doc).

    The file is ``path``, else ``$POOLBRIDGE_CONFIG``, else ``./poolbridge.toml``, else the
    ``[tool.poolbridge]`` table of ``./pyproject.toml``; none at all is fine.
    """
    return resolve(pool, path=path, environ=environ, cwd=cwd, overrides=overrides).config


def resolve(
    pool: str = "default",
    *,
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    overrides_source: Source | None = None,
) -> LoadedConfig:
    """Like :func:`load` but also returns where every value came from."""
    env = os.environ if environ is None else environ
    problems: list[str] = []
    found = find_config_file(path, environ=env, cwd=cwd)
    layers: list[Layer] = [_pool_name_layer(pool)]
    file_path: Path | None = None
    known_pool = pool == "default" or bool(overrides)
    if found is not None:
        file_path, doc = found
        top, pools = _split_doc(doc, file_path, problems)
        table = pools.get(pool)
        known_pool = known_pool or table is not None
        if pool != "default":
            top.pop("name", None)  # a shared name would make every pool look the same
        expanded = _expand_refs(top, env, file_path, problems)
        layers.append(_layer(expanded, Source("file", str(file_path)), problems))
        if isinstance(table, Mapping):
            src = Source("file", f"{file_path} [pools.{pool}]")
            layers.append(_layer(_expand_refs(table, env, file_path, problems), src, problems))
        elif table is not None:
            problems.append(f"pools.{pool} must be a table (got {show(table)})")
    generic, specific = _env_layers(pool, env, problems)
    if not (known_pool or specific):
        defined = sorted(_split_doc(found[1], found[0], [])[1]) if found else []
        close = difflib.get_close_matches(pool, defined, n=1)
        problems.append(
            f"pool {pool!r} is not defined: no [pools.{pool}] table "
            f"(defined: {', '.join(defined) or 'none'}) and no "
            f"{ENV_PREFIX}{_env_pool(pool)}__<FIELD> variables"
            + (f" (did you mean {close[0]!r}?)" if close else "")
        )
    layers += [generic, specific]
    if overrides:
        layers.append(_layer(dict(overrides), overrides_source or Source("argument"), problems))
    return _build(pool, layers, file_path, problems)


def find_config_file(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> tuple[Path, dict[str, Any]] | None:
    """(path, poolbridge table) of the config file to use, or None when there is none."""
    env = os.environ if environ is None else environ
    explicit = path if path is not None else env.get(CONFIG_ENV_VAR) or None
    base = Path(cwd) if cwd is not None else Path.cwd()
    if explicit is not None:
        p = Path(explicit)
        p = p if p.is_absolute() else base / p
        if not p.is_file():
            raise ConfigError([f"config file {p} not found"])
        doc = _read_toml(p)
        if p.name == "pyproject.toml":
            table = doc.get("tool", {}).get("poolbridge")
            if not isinstance(table, dict):
                raise ConfigError([f"{p} has no [tool.poolbridge] table"])
            return p, table
        return p, doc
    candidate = base / "poolbridge.toml"
    if candidate.is_file():
        return candidate, _read_toml(candidate)
    pyproject = base / "pyproject.toml"
    if pyproject.is_file():
        table = _read_toml(pyproject).get("tool", {}).get("poolbridge")
        if isinstance(table, dict):
            return pyproject, table
    return None


# -- helpers ----------------------------------------------------------------------------------


def _read_toml(p: Path) -> dict[str, Any]:
    try:
        with p.open("rb") as fh:
            return tomllib.load(fh)
    except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{p} is not readable TOML: {exc}"]) from None


def _split_doc(
    doc: Mapping[str, Any], path: Path, problems: list[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    top = {k: v for k, v in doc.items() if k != "pools"}
    pools = doc.get("pools", {})
    if not isinstance(pools, Mapping):
        problems.append(f"pools must be a table of [pools.<name>] tables (got {show(pools)})")
        pools = {}
    return top, dict(pools)


def _expand_refs(
    value: Any, env: Mapping[str, str], path: Path, problems: list[str], key: str = ""
) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in string values; ``$${`` is a literal ``${``."""
    if isinstance(value, Mapping):
        return {
            k: _expand_refs(v, env, path, problems, f"{key}.{k}" if key else str(k))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_expand_refs(v, env, path, problems, key) for v in value]
    if not isinstance(value, str) or "$" not in value:
        return value

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$${":
            return "${"
        var, fallback = m.group(1), m.group(2)
        if var in env:
            return env[var]
        if fallback is not None:
            return fallback
        problems.append(f"{key} references ${{{var}}}, which is not set in the environment")
        return ""

    return _REF.sub(sub, value)


def _layer(data: Mapping[str, Any], source: Source, problems: list[str]) -> Layer:
    """Flatten one level (spreading ``retry``) and take pool options out of its URL."""
    out: Layer = {}
    for key, value in data.items():
        if key == "retry":
            sub = value.to_dict() if isinstance(value, RetryPolicy) else value
            try:
                mapping = parse_mapping(sub)
            except ValueError as exc:
                problems.append(f"retry {exc} (got {show(value)})")
                continue
            for rkey, rval in mapping.items():
                if rkey in RETRY_FIELDS:
                    out[f"retry.{rkey}"] = (rval, source)
                else:
                    problems.append(suggest(rkey, RETRY_FIELDS, prefix="retry.") + f" in {source}")
        elif key in FIELD_NAMES:
            out[key] = (value, source)
        else:
            problems.append(suggest(key, (*FIELD_NAMES, "pools")) + f" in {source}")
    _take_url_hosts(out)
    url = out.get("url")
    if url is not None and isinstance(url[0], str) and not structure_problems(url[0]):
        repeated: list[str] = []
        stripped, options = split_url_options(url[0], URL_OPTION_NAMES, repeated)
        problems += [f"{line} [{source}]" for line in repeated]
        out["url"] = (stripped, source)
        for okey, oval in options.items():
            flat = "retry." + okey.removeprefix("retry_") if okey.startswith("retry_") else okey
            out[flat] = (oval, Source("url", f"query of the URL from {source}"))
    return out


def _take_url_hosts(out: Layer) -> None:
    """Several hosts in a level's URL become that level's ``hosts`` (beating its own)."""
    url = out.get("url")
    if url is None or not isinstance(url[0], str):
        return
    stripped, hosts = split_url_hosts(url[0])
    if hosts is not None:
        out["url"] = (stripped, url[1])
        out["hosts"] = (hosts, Source("url", f"hosts of the URL from {url[1]}"))


def _env_pool(pool: str) -> str:
    return pool.upper().replace("-", "_").replace(".", "_")


def _env_layers(
    pool: str, env: Mapping[str, str], problems: list[str] | None = None
) -> tuple[Layer, Layer]:
    """(shared, pool-specific) levels: ``POOLBRIDGE_<FIELD>``, ``POOLBRIDGE_<POOL>__<FIELD>``."""
    generic: Layer = {}
    specific: Layer = {}
    wanted = _env_pool(pool)
    for var, value in env.items():
        if not var.startswith(ENV_PREFIX):
            continue
        pool_part, sep, field_part = var[len(ENV_PREFIX) :].rpartition("__")
        key = field_part.lower()
        if key not in URL_OPTION_NAMES and key not in ("url", "retry"):
            continue  # not ours (POOLBRIDGE_CONFIG, POOLBRIDGE_TEST_PG_URL, ...)
        if sep and pool_part.upper() != wanted:
            continue
        if not sep and key == "name" and pool != "default":
            continue  # like the file's top-level name: only for the default pool
        flat = "retry." + key.removeprefix("retry_") if key.startswith("retry_") else key
        (specific if sep else generic)[flat] = (value, Source("env", var))
    return _env_layer(generic, problems), _env_layer(specific, problems)


def _env_layer(raw: Layer, problems: list[str] | None) -> Layer:
    out = dict(raw)
    if "retry" in out:  # POOLBRIDGE_RETRY as a JSON object; RETRY_<FIELD> variables beat it
        value, src = out.pop("retry")
        spread = _layer({"retry": value}, src, problems if problems is not None else [])
        for k, v in spread.items():
            out.setdefault(k, v)
    _take_url_hosts(out)
    if "url" in out and isinstance(out["url"][0], str) and not structure_problems(out["url"][0]):
        url, src = out["url"]
        repeated: list[str] = []
        stripped, options = split_url_options(url, URL_OPTION_NAMES, repeated)
        if problems is not None:
            problems += [f"{line} [{src}]" for line in repeated]
        out["url"] = (stripped, src)
        for okey, oval in options.items():
            flat = "retry." + okey.removeprefix("retry_") if okey.startswith("retry_") else okey
            out[flat] = (oval, Source("url", f"query of {src.detail}"))
    return out


def _pool_name_layer(pool: str) -> Layer:
    return {} if pool == "default" else {"name": (pool, Source("default", "the pool's key"))}


def _build(
    pool: str, layers: list[Layer], file_path: Path | None, problems: list[str] | None = None
) -> LoadedConfig:
    problems = list(problems or [])
    merged: Layer = {}
    for layer in layers:
        merged.update(layer)
    kwargs: dict[str, Any] = {k: v for k, (v, _) in merged.items() if not k.startswith("retry.")}
    retry = {k.removeprefix("retry."): v for k, (v, _) in merged.items() if k.startswith("retry.")}
    if retry:
        kwargs["retry"] = retry
    sources = {k: merged[k][1] if k in merged else DEFAULT for k in _FLAT_KEYS}
    if "url" not in kwargs:
        problems.append(
            f"url is required: set url in the file, {ENV_PREFIX}URL"
            + (f" or {ENV_PREFIX}{_env_pool(pool)}__URL" if pool != "default" else "")
            + ", or pass it explicitly"
        )
    config = None
    if "url" in kwargs or not problems:
        try:
            config = PoolConfig(**kwargs)
        except ConfigError as exc:
            problems += [_annotate(line, sources) for line in exc.problems]
    if problems or config is None:
        raise ConfigError(problems, source=str(file_path) if file_path else None)
    return LoadedConfig(config=config, sources=sources, file=file_path)


def _annotate(line: str, sources: Mapping[str, Source]) -> str:
    """Append where the offending value came from: ``... (got 0) [env POOLBRIDGE_MAX_SIZE]``."""
    head = line.split(" ", 1)[0]
    src = sources.get(head)
    return f"{line} [{src}]" if src is not None and src.kind != "default" else line
