"""``poolbridge budget``: how large may max_size be per process, given the server's limit?

    poolbridge budget --max-connections 100 --processes 8            # plan
    poolbridge budget --max-connections 100 --processes 8 --max-size 15   # validate (exit 1)
    poolbridge budget --url postgresql://root@127.0.0.1/test --processes 4 --config poolbridge.toml

With ``--url`` the limit and the reserved connections are read from the server (and the
connections in use right now are shown); with ``--config`` the max_size of the configured
pool is validated. The arithmetic lives in :mod:`poolbridge.pool.budget`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from poolbridge.cli import arg, print_json, subcommand
from poolbridge.pool.budget import PG_DEFAULT_RESERVED, ServerConnections, plan_budget

__all__ = ["budget"]

#: adapter used to read the server's settings with ``--url`` (the lightest raw driver)
_ADAPTER_FOR_BACKEND = {"postgresql": "asyncpg", "mysql": "aiomysql"}


async def _ask_server(url: str, adapter: str | None) -> ServerConnections:
    from poolbridge._open import open_pool
    from poolbridge.adapters.registry import get_adapter
    from poolbridge.config.loaders import from_url
    from poolbridge.pool.budget import read_server_connections

    config = from_url(url, min_size=0, max_size=1, name="poolbridge-budget")
    if config.backend not in _ADAPTER_FOR_BACKEND:
        raise SystemExit(f"poolbridge budget: {config.backend} has no connection limit to read")
    name = adapter or _ADAPTER_FOR_BACKEND[config.backend]
    impl = get_adapter(name)
    async with open_pool(config, adapter=name) as pool, pool.acquire() as conn:

        async def run(sql: str) -> Any:
            return await impl.fetch_scalar(conn, sql)

        info = await read_server_connections(config.backend, run)
    assert info is not None
    return info


@subcommand(
    "budget",
    help="compute / validate max_size per process from the server's max_connections",
    args=[
        arg("--max-connections", type=int, help="the server's max_connections"),
        arg(
            "--reserved",
            type=int,
            help="connections reserved on the server (PostgreSQL superuser_reserved_connections"
            f" + reserved_connections; default {PG_DEFAULT_RESERVED}, MySQL 0)",
        ),
        arg("--url", help="read max_connections and reserved from this server"),
        arg("--adapter", help="adapter used with --url (default: asyncpg / aiomysql)"),
        arg("--processes", type=int, default=1, help="processes x replicas sharing the server"),
        arg("--pools-per-process", type=int, default=1, help="pools in each process"),
        arg("--headroom", type=int, default=0, help="connections kept for admin/migrations"),
        arg("--max-size", type=int, help="validate this max_size (exit 1 if it does not fit)"),
        arg("--config", help="validate the max_size of this config file's pool"),
        arg("--pool", default="default", help="pool name in --config (default: default)"),
        arg("--json", action="store_true", help="print the result as JSON"),
    ],
)
def budget(ns: argparse.Namespace) -> int:
    """Split the server's connections between processes and pools; validate a max_size."""
    server: ServerConnections | None = None
    if ns.url:
        server = asyncio.run(_ask_server(ns.url, ns.adapter))
    max_connections: int | None = ns.max_connections
    if max_connections is None:
        if server is None:
            print("poolbridge budget: give --max-connections or --url", file=sys.stderr)
            return 2
        max_connections = server.max_connections
    if ns.reserved is not None:
        reserved = ns.reserved
    elif server is not None:
        reserved = server.reserved
    else:
        reserved = PG_DEFAULT_RESERVED
    plan = plan_budget(
        max_connections=max_connections,
        reserved=reserved,
        processes=ns.processes,
        pools_per_process=ns.pools_per_process,
        headroom=ns.headroom,
    )
    max_size: int | None = ns.max_size
    if max_size is None and ns.config:
        from poolbridge.config.loaders import load

        max_size = load(ns.pool, path=ns.config).max_size
    problems = plan.validate(max_size) if max_size is not None else []
    result: dict[str, Any] = plan.as_dict()
    if server is not None:
        result["server_in_use"] = server.in_use
        result["server_free"] = server.free
    if max_size is not None:
        result["max_size"] = max_size
        result["fits"] = not problems
        result["problems"] = problems
    if ns.json:
        print_json(result)
    else:
        print(
            f"max_connections {plan.max_connections} - reserved {plan.reserved} - headroom "
            f"{plan.headroom} = {plan.available} for {plan.processes} process(es) x "
            f"{plan.pools_per_process} pool(s)"
        )
        print(f"max_size per pool: {plan.per_pool} (per process: {plan.per_process})")
        if server is not None:
            print(f"server now: {server.in_use} in use, {server.free} free")
        if max_size is not None:
            print(f"max_size={max_size}: " + ("fits" if not problems else problems[0]))
    return 1 if problems else 0
