"""BridgePool uses SQLAlchemy's pool subclass points only (docs/internals.md): the members
it defines that SQLAlchemy's Pool also has are exactly those QueuePool defines itself, and
the members of SQLAlchemy it relies on still exist with the shape it calls. A failure here
names what changed in SQLAlchemy."""

from __future__ import annotations

import inspect

import sqlalchemy
from sqlalchemy.pool import Pool, QueuePool
from sqlalchemy.pool.base import ConnectionPoolEntry

from poolbridge.adapters.sqlalchemy._pool import BridgePool

#: what SQLAlchemy's own pools implement (QueuePool / AsyncAdaptedQueuePool)
SUBCLASS_POINTS = {"__init__", "_do_get", "_do_return_conn", "status", "dispose", "recreate"}
#: QueuePool's own answers, which BridgePool gives with QueuePool's meanings
QUEUEPOOL_ANSWERS = {"size", "checkedin", "checkedout", "overflow", "timeout"}


def test_only_subclass_points_are_overridden() -> None:
    overridden = {name for name in vars(BridgePool) if hasattr(Pool, name)}
    overridden.discard("__doc__")
    overridden.discard("__module__")
    overridden.discard("_is_asyncio")  # the class flag AsyncAdaptedQueuePool sets too
    assert overridden <= SUBCLASS_POINTS, (
        f"BridgePool overrides {sorted(overridden - SUBCLASS_POINTS)} of SQLAlchemy's Pool, "
        "which are not subclass points"
    )
    for name in SUBCLASS_POINTS | QUEUEPOOL_ANSWERS:
        assert name in vars(QueuePool), (
            f"SQLAlchemy {sqlalchemy.__version__}: QueuePool no longer defines {name}; "
            "re-check BridgePool against its pool subclass points"
        )


def test_sqlalchemy_members_used_still_exist() -> None:
    v = sqlalchemy.__version__
    init = inspect.signature(Pool.__init__).parameters
    for arg in ("creator", "_dispatch", "dialect", "pre_ping", "recycle", "reset_on_return"):
        assert arg in init, f"SQLAlchemy {v}: Pool.__init__ lost {arg!r} (recreate passes it)"
    assert callable(getattr(Pool, "_create_connection", None)), (
        f"SQLAlchemy {v}: Pool._create_connection (QueuePool's way to open) is gone"
    )
    assert getattr(Pool, "_is_asyncio", None) is False, (
        f"SQLAlchemy {v}: Pool._is_asyncio (the asyncio-compatibility flag) changed"
    )
    declared: set[str] = set()  # members and annotated attributes of the public interface
    for cls in ConnectionPoolEntry.__mro__:
        declared |= set(vars(cls)) | set(getattr(cls, "__annotations__", {}))
    for name in ("driver_connection", "dbapi_connection", "close", "invalidate", "info"):
        assert name in declared, f"SQLAlchemy {v}: ConnectionPoolEntry.{name} is gone"
    from sqlalchemy.engine.default import DefaultDialect

    for name in ("do_ping", "do_rollback"):
        assert callable(getattr(DefaultDialect, name, None)), f"SQLAlchemy {v}: Dialect.{name}"
    from sqlalchemy.util import await_
    from sqlalchemy.util.concurrency import greenlet_spawn, in_greenlet

    assert callable(await_) and callable(greenlet_spawn) and callable(in_greenlet)
