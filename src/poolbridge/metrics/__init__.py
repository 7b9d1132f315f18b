"""Metrics exporters for the stats every pool keeps.

- :mod:`poolbridge.metrics.prometheus` (extra ``poolbridge[prometheus]``): a
  ``prometheus_client`` collector, one labelled series per pool.
- :mod:`poolbridge.metrics.otel` (extra ``poolbridge[otel]``): OpenTelemetry instruments
  named after the database-client conventions (``db.client.connection.*``).

Both read the documented stats dict (:mod:`poolbridge.pool.stats`) of any object that
looks like a :class:`~poolbridge.pool.handle.Pool` (see :class:`StatsSource`). Importing this
package imports neither prometheus_client nor OpenTelemetry; each exporter module raises an
ImportError naming the extra to install when its library is missing.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Protocol, runtime_checkable

from poolbridge.errors import AdapterNotAvailable
from poolbridge.pool.stats import PoolStats, StatsRecorder

__all__ = ["MetricsNotAvailable", "StatsSource", "import_extra"]


class MetricsNotAvailable(AdapterNotAvailable):
    """The exporter's library is missing; the message names the extra to install.

    An :class:`ImportError` (through AdapterNotAvailable) so ``except ImportError`` works.
    """


@runtime_checkable
class StatsSource(Protocol):
    """What an exporter needs from a pool: its name, adapter, stats dict and recorder."""

    @property
    def name(self) -> str: ...

    adapter: str
    recorder: StatsRecorder

    def stats(self) -> PoolStats: ...


def import_extra(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise MetricsNotAvailable naming ``pip install 'poolbridge[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MetricsNotAvailable(
            f"poolbridge.metrics needs the {module!r} module: pip install 'poolbridge[{extra}]'"
        ) from exc
