"""Prometheus: export a pool's stats and scrape them over HTTP.

python examples/prometheus.py
"""

from __future__ import annotations

import asyncio
import os
import socket
import urllib.request

from prometheus_client import CollectorRegistry, start_http_server

import poolbridge
from poolbridge.metrics import prometheus

URL = os.environ.get("DATABASE_URL", "postgresql://root@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def main() -> None:
    registry = CollectorRegistry()  # an app would use the default prometheus_client.REGISTRY
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    config = poolbridge.PoolConfig.from_url(URL, min_size=2, max_size=4, name="orders")
    try:
        async with poolbridge.open_pool(config, adapter="asyncpg") as pool:
            prometheus.register(pool, registry)
            async with pool.acquire() as conn:
                await conn.fetchval("SELECT 1")
                body = await asyncio.to_thread(
                    lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read()
                )
            for line in body.decode().splitlines():
                if line.startswith(("poolbridge_connection_count", "poolbridge_connection_max")):
                    print(line)
            prometheus.unregister(pool, registry)
    finally:
        server.shutdown()
        thread.join()


if __name__ == "__main__":
    asyncio.run(main())
