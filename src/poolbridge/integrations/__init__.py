"""Integrations with web frameworks (each behind its own extra).

- :mod:`poolbridge.integrations.fastapi` (``poolbridge[fastapi]``): a lifespan that opens
  and closes the pool(s), a per-request connection/session dependency and a ``/metrics``
  route.

Importing this package imports no framework.
"""

from __future__ import annotations

__all__: list[str] = []
