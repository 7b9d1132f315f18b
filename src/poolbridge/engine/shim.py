"""What the engine needs from a driver: the :class:`DriverShim` protocol.

A module of its own, never compiled: the compiled build (engine/build.py) turns the classes
of its modules into native classes, and a Protocol must stay a Protocol at runtime.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from poolbridge.config.model import PoolConfig

__all__ = ["DriverShim"]


@runtime_checkable
class DriverShim(Protocol):
    """What the engine needs from a driver (``poolbridge.drivers.<name>`` implement it)."""

    name: str
    backend: str

    async def connect(self, config: PoolConfig, timeout: float) -> Any:
        """Open ONE native connection with every session setting of ``config`` applied."""

    async def close(self, conn: Any) -> None:
        """Close gracefully."""

    def terminate(self, conn: Any) -> None:
        """Close at once; sync; never raises."""

    async def ping(self, conn: Any) -> None:
        """Raise if the connection is dead."""

    def in_transaction(self, conn: Any) -> bool | None:
        """Transaction state known locally (no I/O); None when unknown."""

    def is_closed(self, conn: Any) -> bool:
        """True when the driver knows the connection is closed."""

    async def rollback(self, conn: Any) -> None:
        """Roll back any open or failed transaction."""

    async def full_reset(self, conn: Any) -> bool:
        """Discard all session state and re-apply the session settings; False = unsupported."""

    async def server_id(self, conn: Any) -> int | str:
        """The server-side id: backend pid / CONNECTION_ID() / a local counter."""

    def is_connection_error(self, exc: BaseException) -> bool:
        """True when ``exc`` means the connection itself is broken."""

    # Optional, for the checkin hot path: ``reusable(conn) -> bool``, True when the
    # connection is open and known to be outside a transaction (``not is_closed(conn) and
    # in_transaction(conn) is False`` in one pass). The engine composes it when absent.
    #
    # Optional, for both hot paths: ``state_checks(config) -> (is_closed, reusable) | None``,
    # plain functions of the connection giving the same answers as the two methods for a
    # pool of ``config`` (drivers/base.py BaseShim.state_checks); None: the methods are called.
