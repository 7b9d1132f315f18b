"""What the three apps share: the config file, the workload size and the report format.

Nothing here is ORM-specific: each app defines the same model (``switch_orm_item``: id,
name) in its own ORM and runs the same workload — WORKERS concurrent tasks, each inserting
one row and reading it back — then prints one JSON line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import poolbridge

HERE = Path(__file__).resolve().parent
WORKERS = int(os.environ.get("SWITCH_ORM_WORKERS", "500"))
#: table name (the test sets a unique one)
TABLE = os.environ.get("SWITCH_ORM_TABLE", "switch_orm_item")


def load_config() -> poolbridge.PoolConfig:
    """The pool config of every app: poolbridge.toml here, then POOLBRIDGE_* variables."""
    return poolbridge.load(path=HERE / "poolbridge.toml")


class Report:
    """Collects what the run saw: server ids opened (on_connect) and the peak in use."""

    def __init__(self, app: str, config: poolbridge.PoolConfig) -> None:
        self.app = app
        self.config = config
        self.server_ids: list[Any] = []
        self.used = 0
        self.peak = 0

    def hooks(self) -> poolbridge.Hooks:
        def on_connect(event: poolbridge.ConnectionEvent) -> None:
            self.server_ids.append(event.connection_id)

        def on_checkout(event: poolbridge.ConnectionEvent) -> None:
            self.used += 1
            self.peak = max(self.peak, self.used)

        def on_checkin(event: poolbridge.ConnectionEvent) -> None:
            self.used -= 1

        return poolbridge.Hooks(
            on_connect=on_connect, on_checkout=on_checkout, on_checkin=on_checkin
        )

    def emit(self, inserted: int, read: int) -> None:
        print(
            json.dumps(
                {
                    "app": self.app,
                    "backend": self.config.backend,
                    "inserted": inserted,
                    "read": read,
                    "peak_in_use": self.peak,
                    "max_size": self.config.max_size,
                    "server_ids": self.server_ids,
                }
            ),
            flush=True,
        )
