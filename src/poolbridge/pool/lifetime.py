"""Lifetime and idle bookkeeping of pooled connections (standard library only).

The rules the engine (:mod:`poolbridge.engine.lifecycle`) and SQLAlchemy's ``BridgePool``
(:mod:`poolbridge.adapters.sqlalchemy._state`) apply to every connection they keep:

- **Lifetime with jitter.** A connection lives ``max_lifetime x U(1 - LIFETIME_JITTER, 1)``
  seconds (:func:`lifetime`): never longer than ``max_lifetime``, and a batch opened
  together does not expire together. ``inf`` when there is no ``max_lifetime``, so the
  checkout/checkin test is one comparison, ``now >= expires``.
- **Idle reaping.** An idle connection above ``min_size`` goes after ``max_idle`` seconds
  idle (:func:`idle_too_long`).
- **Maintenance interval.** The background task looks at the idle connections often
  enough for every knob it enforces (:func:`maintenance_interval`).
"""

from __future__ import annotations

import random

__all__ = ["LIFETIME_JITTER", "idle_too_long", "lifetime", "maintenance_interval"]

#: a connection's lifetime is drawn from [1 - LIFETIME_JITTER, 1] x max_lifetime
LIFETIME_JITTER = 0.10

#: bounds of the maintenance task's interval (seconds)
_MIN_INTERVAL = 0.02
_MAX_INTERVAL = 1.0

_INF = float("inf")


def lifetime(max_lifetime: float | None) -> float:
    """Seconds a connection opened now may live: ``max_lifetime`` minus up to
    :data:`LIFETIME_JITTER` of it, drawn per connection (``inf``: no max_lifetime)."""
    if max_lifetime is None:
        return _INF
    return max_lifetime * (1.0 - random.uniform(0.0, LIFETIME_JITTER))


def idle_too_long(now: float, idle_since: float, max_idle: float | None) -> bool:
    """Whether a connection idle since ``idle_since`` passed ``max_idle`` (the caller
    reaps it only above min_size)."""
    return max_idle is not None and now - idle_since >= max_idle


def maintenance_interval(
    max_idle: float | None, max_lifetime: float | None, leak_timeout: float | None
) -> float:
    """Seconds between two maintenance passes: a quarter of the shortest of ``max_idle``,
    ``max_lifetime`` and ``leak_timeout``, within [0.02, 1] s."""
    knobs = [k for k in (max_idle, max_lifetime, leak_timeout) if k is not None]
    return max(_MIN_INTERVAL, min(_MAX_INTERVAL, min(knobs, default=_MAX_INTERVAL) / 4))
