"""``with server:`` for the test servers: start on entry (closing what a failed start left
behind), close on exit."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class StartedInContext:
    """A server with ``start()`` and an idempotent ``close()``, used as a context manager."""

    def start(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
