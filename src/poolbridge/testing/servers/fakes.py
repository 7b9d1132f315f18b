"""Loopback TCP stand-ins for the connect rows: a server that never answers
(connect_timeout) and a proxy that drops the first connection (retry)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

__all__ = ["FakeServer", "RefuseFirstProxy"]


@dataclass
class FakeServer:
    """A TCP listener that accepts and never answers (connect_timeout row).

    ``held`` collects, per accepted connection, the seconds until the client hung up;
    ``accepted`` the loop time of each accepted connection.
    """

    port: int = 0
    held: list[float] | None = None
    accepted: list[float] | None = None
    server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        self.held = []
        self.accepted = []
        loop = asyncio.get_running_loop()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            t0 = loop.time()
            assert self.accepted is not None
            self.accepted.append(t0)
            with contextlib.suppress(Exception):
                while await reader.read(1024):
                    pass
            assert self.held is not None
            self.held.append(loop.time() - t0)
            writer.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)


class RefuseFirstProxy:
    """Drops the first connection, forwards the others to the real server (retry row)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.accepted = 0
        self.server: asyncio.base_events.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.accepted == 1:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
