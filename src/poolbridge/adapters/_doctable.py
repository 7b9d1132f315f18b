"""The knob table of the ORM adapters' documentation pages, rendered as Markdown.

Tortoise's and peewee-async's pages are written by hand around a generated table (one row
per knob, one column per backend/driver); both adapters render it here, so neither imports
the other's modules.
"""

from __future__ import annotations

__all__ = ["DOC_KNOBS", "doc_table"]

#: knobs shown in the documentation table, in PoolConfig order
DOC_KNOBS = (
    "min_size", "max_size", "acquire_timeout", "connect_timeout", "statement_timeout",
    "max_lifetime", "max_idle", "pre_ping", "max_waiting", "reset", "statement_cache",
    "isolation_level", "session", "ssl", "password", "driver_options", "leak_timeout", "retry",
    "hosts", "target_session_attrs", "load_balance_hosts", "host_recheck_interval",
)  # fmt: skip


def doc_table(
    columns: dict[str, tuple[dict[str, str], dict[str, str]]],
) -> str:
    """A Markdown table: one row per knob, one column per driver (emulated how / why not).

    ``columns`` maps a column title to (emulated, unsupported) dicts.
    """
    head = "| knob | " + " | ".join(columns) + " |"
    sep = "|---|" + "---|" * len(columns)
    rows = [head, sep]
    for knob in DOC_KNOBS:
        cells = []
        for emulated_map, unsupported_map in columns.values():
            if knob in unsupported_map:
                cells.append(f"**no**: {unsupported_map[knob]}")
            elif knob in emulated_map:
                cells.append(emulated_map[knob])
            else:
                cells.append("-")
        rows.append(f"| `{knob}` | " + " | ".join(cells) + " |")
    return "\n".join(rows)
