"""An in-process asyncio TCP proxy that cuts, stalls and refuses connections on command.

Fault tests put it between a pool and a server (loopback only) to reproduce what a network
does to a pool: a firewall dropping every connection, a link that stops carrying bytes, a
server that refuses new connections for a while. Like psycopg_pool's test proxy, but
in-process so a test can flip it at an exact point of its own control flow.

    async with TcpProxy("127.0.0.1", 5432) as proxy:
        url = proxy.url_for("postgresql://root@127.0.0.1:5432/test")  # same URL via the proxy
        proxy.drop()             # abort every live connection (both sides) now
        proxy.stall(2.0)         # forward no byte for 2 s (None: until heal())
        await proxy.refuse(1.0)  # close the listening socket: new connections are refused
        await proxy.heal()       # forward again, listen again
        proxy.live_connections   # proxied connections currently open
        proxy.round_trips        # requests so far: client bytes after a server answer

``round_trips`` counts, over every connection, each time the client sends after the server
last spoke (or first sends): one request/response exchange, however many packets or
protocol messages it takes, so a pipelined batch counts once. The benchmarks use it to see
the round trips per operation that instruction counts cannot (benchmarks/roundtrips.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

__all__ = ["TcpProxy", "upstream_port"]

_LOOPBACK = ("127.0.0.1", "::1", "localhost")
_CHUNK = 65536

#: client-side port -> the proxy's own local port towards its target, for every live proxied
#: connection of every proxy in this process
_ROUTES: dict[int, int] = {}


def upstream_port(client_port: int) -> int | None:
    """The local port a proxy of this process uses towards its target for the connection
    whose client has local port ``client_port`` (None: not a proxied connection).

    The target sees that port, not the client's: the suite's pgbouncer view names a
    connection by the client port pgbouncer lists in SHOW CLIENTS.
    """
    return _ROUTES.get(client_port)


class _Link:
    """One proxied connection: the client side, the server side and two pump tasks."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.server: asyncio.StreamWriter | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.answered = True  # the server spoke last (or nobody yet): next request is new

    def abort(self) -> None:
        for writer in (self.client, self.server):
            if writer is not None:
                writer.transport.abort()
        for task in self.tasks:
            task.cancel()


class TcpProxy:
    """Forward ``listen_host:listen_port`` (default: a free loopback port) to the target.

    Both addresses must be loopback: the proxy exists for tests on one machine.
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
    ) -> None:
        for what, host in (("target_host", target_host), ("listen_host", listen_host)):
            if host not in _LOOPBACK:
                raise ValueError(f"{what} must be a loopback address (got {host!r})")
        self.target_host = target_host
        self.target_port = target_port
        self.listen_host = listen_host
        self.port = listen_port
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._timers: set[asyncio.TimerHandle] = set()
        self._refusing = False
        self.total_connections = 0
        self.dropped_connections = 0
        self.round_trips = 0

    # -- state ---------------------------------------------------------------------------------

    @property
    def live_connections(self) -> int:
        """Proxied connections open right now."""
        return len(self._links)

    @property
    def stalled(self) -> bool:
        return not self._flowing.is_set()

    @property
    def refusing(self) -> bool:
        return self._refusing

    def url_for(self, url: str) -> str:
        """``url`` with its host and port replaced by the proxy's (user, db, query kept)."""
        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@" if userinfo else ""
        netloc += f"{self.listen_host}:{self.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> TcpProxy:
        """Listen (on a free port the first time, then on the same port again)."""
        if self._server is None:
            self._server = await asyncio.start_server(
                self._handle, self.listen_host, self.port, reuse_address=True
            )
            self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        """Stop listening and abort every live connection."""
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        await self._stop_listening()
        self.drop()
        self._flowing.set()

    async def __aenter__(self) -> TcpProxy:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- faults ----------------------------------------------------------------------------------

    def drop(self) -> int:
        """Abort every live connection on both sides (the peers see a reset); returns how many."""
        links = list(self._links)
        for link in links:
            link.abort()
        self._links.clear()
        self.dropped_connections += len(links)
        return len(links)

    def stall(self, seconds: float | None = None) -> None:
        """Stop forwarding bytes in both directions, on live and new connections alike.

        Connections stay open; new ones are accepted but their handshake goes nowhere.
        With ``seconds`` the proxy heals itself afterwards (the listener is untouched).
        """
        self._flowing.clear()
        if seconds is not None:
            self._later(seconds, self._flowing.set)

    async def refuse(self, seconds: float | None = None) -> None:
        """Refuse new connections (the listening socket is closed: ECONNREFUSED).

        Live connections keep working. With ``seconds`` listening resumes afterwards.
        """
        self._refusing = True
        await self._stop_listening()
        if seconds is not None:
            self._later(seconds, lambda: asyncio.ensure_future(self._resume()))

    async def heal(self) -> None:
        """Forward bytes again and listen again (on the same port)."""
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self._flowing.set()
        await self._resume()

    # -- internals -----------------------------------------------------------------------------

    def _later(self, seconds: float, callback: Callable[[], object]) -> None:
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle

        def fire() -> None:
            self._timers.discard(handle)
            callback()

        handle = loop.call_later(seconds, fire)
        self._timers.add(handle)

    async def _resume(self) -> None:
        self._refusing = False
        await self.start()

    async def _stop_listening(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                # wait_closed() would also wait for live handlers; only the listener matters
                await asyncio.wait_for(asyncio.shield(server.wait_closed()), 0.05)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refusing:
            writer.transport.abort()
            return
        link = _Link(writer)
        self._links.add(link)
        self.total_connections += 1
        route: int | None = None
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(
                    self.target_host, self.target_port
                )
            except OSError:
                writer.transport.abort()
                return
            link.server = up_writer
            peer, own = writer.get_extra_info("peername"), up_writer.get_extra_info("sockname")
            if isinstance(peer, tuple) and isinstance(own, tuple):
                route = int(peer[1])
                _ROUTES[route] = int(own[1])
            if link not in self._links:  # dropped while connecting
                link.abort()
                return
            link.tasks = [
                asyncio.ensure_future(self._pump(reader, up_writer, link, upstream=True)),
                asyncio.ensure_future(self._pump(up_reader, writer, link, upstream=False)),
            ]
            await asyncio.gather(*link.tasks, return_exceptions=True)
        except asyncio.CancelledError:
            pass  # the loop is shutting down: nothing left to forward
        finally:
            link.abort()
            self._links.discard(link)
            if route is not None:
                _ROUTES.pop(route, None)

    async def _pump(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, link: _Link, *, upstream: bool
    ) -> None:
        try:
            while True:
                await self._flowing.wait()
                data = await src.read(_CHUNK)
                if not data:
                    break
                if upstream:
                    if link.answered:
                        link.answered = False
                        self.round_trips += 1
                else:
                    link.answered = True
                await self._flowing.wait()
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            # one side ended: end the other one too, as a real connection would
            link.abort()
