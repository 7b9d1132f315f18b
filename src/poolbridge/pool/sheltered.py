"""Run a coroutine to its end in the calling task, holding back a cancellation meanwhile.

``result, held = await sheltered(coro)`` is ``result = await coro`` except that a
cancellation of the calling task that arrives while ``coro`` waits is not thrown into
``coro``: ``coro`` runs on to its end and the cancellation is handed back as ``held``, for
the caller to raise once its own bookkeeping is done (None: none came). For a step that
must not stop half-way (psycopg_pool's checkin: once it has detached a connection, an
interruption leaves the pool counting a connection it no longer holds). If ``coro`` fails
after a cancellation was held back, the cancellation is raised, ``coro``'s error as its
context: the caller asked to be cancelled.

Unlike ``asyncio.shield`` it makes no task: ``coro`` runs in the calling task, and a ``coro``
that finishes without waiting (the usual checkin) costs one generator. When it waits, the
task waits on a future of this module's that ``coro``'s own future completes: a task
cancels the future it waits on, and ``coro``'s must not be cancelled. ``interruptible``
(called with ``subject`` when a cancellation arrives) names the moments a cancellation may
still reach ``coro`` (a round trip that ``coro`` handles cancelling itself); the first
cancellation held back is the one handed back. A ``coro`` that never ends keeps its caller
from being cancelled: shelter only steps that end on their own. Standard library only.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Callable, Coroutine, Generator
from functools import partial
from typing import Any, TypeVar

__all__ = ["sheltered"]

T = TypeVar("T")
S = TypeVar("S")


def _complete(proxy: asyncio.Future[None], _done: object) -> None:
    if not proxy.done():  # a cancelled proxy was replaced by another
        proxy.set_result(None)


@types.coroutine
def sheltered(
    coro: Coroutine[Any, Any, T],
    interruptible: Callable[[S], bool] | None = None,
    subject: S | None = None,
) -> Generator[Any, None, tuple[T, BaseException | None]]:
    """``await coro``, and the cancellation held back meanwhile (see the module docstring);
    ``interruptible(subject)`` true: that cancellation is passed on to ``coro`` instead."""
    held: BaseException | None = None  # the cancellation to raise once coro has ended
    throw: BaseException | None = None  # what to throw into coro on its next step
    while True:
        try:
            if throw is None:
                waited = coro.send(None)
            else:
                exc, throw = throw, None
                waited = coro.throw(exc)
        except StopIteration as stop:
            result: T = stop.value
            break
        except BaseException:
            if held is None:
                raise
            # coro failed after a cancellation was held back: the caller asked to be
            # cancelled, and that is what it gets (coro's error as its context)
            raise held  # noqa: B904
        if waited is None:  # a bare yield (sleep(0)): resumed on the next loop pass
            try:
                yield None
            except asyncio.CancelledError as exc:
                if interruptible is not None and interruptible(subject):  # type: ignore[arg-type]
                    throw = exc
                elif held is None:
                    held = exc
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # thrown in by hand: coro's to handle
                throw = exc
            continue
        # coro waits on the future ``waited`` (as a task would, minus cancelling it)
        waited._asyncio_future_blocking = False
        while not waited.done():
            proxy: asyncio.Future[None] = waited.get_loop().create_future()
            waited.add_done_callback(partial(_complete, proxy))
            try:
                yield from proxy
            except asyncio.CancelledError as exc:
                if interruptible is not None and interruptible(subject):  # type: ignore[arg-type]
                    # what the task would have done: cancel the future coro waits on
                    # (coro then sees CancelledError as it resumes); already done: throw it
                    if not waited.cancel(*exc.args[:1]):
                        throw = exc
                    break
                if held is None:
                    held = exc
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # thrown in by hand: coro's to handle
                throw = exc
                break
    return result, held
