"""JSON Schema (draft 2020-12) of ``poolbridge.toml`` / ``[tool.poolbridge]``, for editors.

It describes the shape (types, enums, bounds, no unknown keys); cross-field rules such as
``max_size >= min_size`` are checked by PoolConfig itself. ``poolbridge config schema``
prints it.
"""

from __future__ import annotations

from typing import Any

from poolbridge.config.hosts import LOAD_BALANCE, MAX_HOSTS, TARGET_SESSION_ATTRS
from poolbridge.config.model import FIELD_NAMES, RETRY_FIELDS
from poolbridge.config.validate import (
    DRIVERS,
    ISOLATION_LEVELS,
    MAX_DURATION,
    MAX_SIZE,
    RESETS,
    SSL_MODES,
)

__all__ = ["json_schema"]

_DURATION_PATTERN = r"^ *[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+) *(ms|s|m|h)? *$"


def _duration(description: str, *, optional: bool = False, minimum_exclusive: bool = True) -> Any:
    number: dict[str, Any] = {"type": "number", "maximum": MAX_DURATION}
    number["exclusiveMinimum" if minimum_exclusive else "minimum"] = 0
    options: list[dict[str, Any]] = [number, {"type": "string", "pattern": _DURATION_PATTERN}]
    if optional:
        options.append({"type": "string", "enum": ["", "none", "null", "off"]})
    return {"description": description, "anyOf": options}


def _int(description: str, minimum: int) -> dict[str, Any]:
    return {
        "description": description,
        "type": "integer",
        "minimum": minimum,
        "maximum": MAX_SIZE,
    }


_DRIVERS = sorted({d for ds in DRIVERS.values() for d in ds})

FIELD_SCHEMAS: dict[str, dict[str, Any]] = {
    "url": {
        "description": "Database URL: postgresql://, postgres://, mysql://, mariadb:// or "
        "sqlite:// (optionally +driver). Pool options in the query are taken; other query "
        "keys go to the driver. ${VAR} references are expanded from the environment.",
        "type": "string",
        "pattern": r"^(postgresql|postgres|mysql|mariadb|sqlite)(\+[a-z]+)?://",
    },
    "driver": {
        "description": "Force a driver (must match the URL's backend).",
        "enum": _DRIVERS,
    },
    "min_size": _int("Connections opened at start and kept open.", 0),
    "max_size": _int("Hard cap of open connections (>= min_size).", 1),
    "acquire_timeout": _duration("Seconds a caller waits for a connection (PoolTimeout)."),
    "connect_timeout": _duration("Seconds to establish one connection."),
    "statement_timeout": _duration("Seconds a statement may run; none = no limit.", optional=True),
    "max_lifetime": _duration(
        "Seconds before a connection is replaced; none = never.", optional=True
    ),
    "max_idle": _duration("Seconds an idle connection above min_size is kept.", optional=True),
    "pre_ping": {
        "description": "Check a connection is alive before handing it out; absent = as the "
        "stack does stock.",
        "type": "boolean",
    },
    "max_waiting": _int("Callers allowed to queue (TooManyRequests beyond); 0 = unbounded.", 0),
    "reset": {"description": "Checkin reset policy.", "enum": list(RESETS)},
    "statement_cache": {
        "description": "Prepared-statement cache (false for pgbouncer).",
        "type": "boolean",
    },
    "isolation_level": {
        "description": "Transaction isolation level; absent = server default.",
        "enum": list(ISOLATION_LEVELS),
    },
    "session": {
        "description": "Session settings applied on every new connection.",
        "type": "object",
        "propertyNames": {"pattern": r"^[A-Za-z_][A-Za-z0-9_.]*$"},
        "additionalProperties": {"type": ["string", "integer", "number"]},
    },
    "ssl": {
        "description": "TLS mode, translated per driver (true: the stack's own meaning).",
        "anyOf": [{"enum": list(SSL_MODES)}, {"type": "boolean"}],
    },
    "password": {
        "description": "Password (beats the URL's); prefer a ${VAR} reference.",
        "type": "string",
    },
    "driver_options": {
        "description": "Extra keyword arguments passed to the driver untouched.",
        "type": "object",
    },
    "leak_timeout": _duration(
        "Seconds a connection may be held before it is reported.", optional=True
    ),
    "name": {
        "description": "Pool name for metrics, logs and application_name.",
        "type": "string",
        "minLength": 1,
    },
    "hosts": {
        "description": "Several 'host:port' entries tried in order (replace the URL's host; "
        "an entry without a port takes the URL's).",
        "type": "array",
        "maxItems": MAX_HOSTS,
        "items": {"type": "string", "minLength": 1},
    },
    "target_session_attrs": {
        "description": "Which server a connection must reach (libpq's meanings).",
        "enum": list(TARGET_SESSION_ATTRS),
    },
    "load_balance_hosts": {
        "description": "disable: hosts in order; random: shuffled per connect.",
        "enum": list(LOAD_BALANCE),
    },
    "host_recheck_interval": _duration(
        "Seconds after which a connection on a less preferred host is retired so the "
        "preferred hosts are tried again; none = only max_lifetime retires it.",
        optional=True,
    ),
    "retry": {
        "description": "Connection-establishment retry with capped exponential backoff.",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "attempts": _int("Tries in all, the first one included.", 1),
            "initial_backoff": _duration("First backoff in seconds.", minimum_exclusive=False),
            "max_backoff": _duration(
                "Backoff cap in seconds (>= initial_backoff).", minimum_exclusive=False
            ),
            "jitter": {
                "description": "+/- fraction applied to each sleep.",
                "type": "number",
                "minimum": 0,
                "maximum": 1,
            },
        },
    },
}

assert set(FIELD_SCHEMAS) == set(FIELD_NAMES), "schema out of sync with PoolConfig"
assert set(FIELD_SCHEMAS["retry"]["properties"]) == set(RETRY_FIELDS)


def json_schema() -> dict[str, Any]:
    """The schema of the whole file: pool fields at the top, named pools under ``pools``."""
    pool = {
        "type": "object",
        "additionalProperties": False,
        "properties": FIELD_SCHEMAS,
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "poolbridge configuration (poolbridge.toml or [tool.poolbridge])",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            **FIELD_SCHEMAS,
            "pools": {
                "description": "Named pools; each inherits the top-level fields.",
                "type": "object",
                "additionalProperties": {"$ref": "#/$defs/pool"},
            },
        },
        "$defs": {"pool": pool},
    }
