"""A stats source driven by a real StatsRecorder, for exporter tests that need no server."""

from __future__ import annotations

from typing import Any

from poolbridge.pool.stats import StatsRecorder


class RecorderPool:
    """Has exactly what exporters read from a Pool: name, adapter, recorder, stats()."""

    def __init__(self, name: str = "fake", adapter: str = "fake", *, max_size: int = 4) -> None:
        self.name = name
        self.adapter = adapter
        self.recorder = StatsRecorder(min_size=1, max_size=max_size)

    def stats(self) -> dict[str, Any]:
        return self.recorder.snapshot()
