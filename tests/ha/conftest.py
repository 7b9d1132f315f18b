"""Fixtures of the high-availability tests: a replicated PostgreSQL pair (shared by the
non-destructive tests of a module), unreachable hosts, and a clean down-host memory."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from poolbridge.drivers.hosts import forget_down_hosts
from poolbridge.testing.servers.embedded import free_port


@pytest.fixture(scope="module")
def pair() -> Iterator[object]:
    from poolbridge.testing.servers.replica import ReplicatedPostgres

    pg = ReplicatedPostgres()
    try:
        pg.start()
    except Exception as exc:  # pragma: no cover - environment dependent
        pg.close()
        pytest.fail(f"the replicated embedded PostgreSQL pair did not start: {exc}")
    try:
        yield pg
    finally:
        pg.close()


@pytest.fixture(autouse=True)
def _fresh_down_memory() -> Iterator[None]:
    forget_down_hosts()
    yield
    forget_down_hosts()


@pytest.fixture
def dead_host() -> str:
    """A loopback port nothing listens on: connects are refused at once."""
    return f"127.0.0.1:{free_port()}"


@pytest.fixture
def blackhole() -> Iterator[str]:
    """A loopback port that accepts TCP but never answers: a connect hangs until its
    timeout, like a host that went away without a reset."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()
