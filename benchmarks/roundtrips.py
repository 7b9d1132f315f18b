"""Round trips to the server per operation of each bench stack: poolbridge vs hand vs raw.

``instructions.py`` counts what the client executes; it cannot see a statement more per
query (a ROLLBACK at release, a ping at checkout, a SET at checkout), which costs a round
trip of wall time and server work but few client instructions. This script puts
poolbridge's counting TCP proxy (``poolbridge.testing.servers.proxy.TcpProxy.round_trips``) between
each stack and its server and reports request/response exchanges per operation. Each
variant runs N1 and N2 operations in a fresh child process and the difference is divided
by N2 - N1, so pool opening, warm-up and teardown cancel out.

    python benchmarks/roundtrips.py                       # every stack, select1 and orm
    python benchmarks/roundtrips.py --stack psycopg --query orm --tasks 10

A stack whose poolbridge variant needs more round trips per operation than the same stack
configured by hand is flagged with ``MORE``; the exit status is 1 if any is.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from poolbridge.cli.bench.drivers import URLS  # noqa: E402 - after the path insert

#: the variables the stacks read their server URLs from (the children get the proxies')
ENV_OF = {"postgresql": "POOLBRIDGE_TEST_PG_URL", "mysql": "POOLBRIDGE_TEST_MYSQL_URL"}


async def _child(spec: str, variant: str, n: int, env: dict[str, str]) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / "instructions.py"),
        "--child",
        spec,
        variant,
        str(n),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    if proc.returncode != 0 or b"instructions.py: completed" not in err:
        raise RuntimeError(f"{spec} {variant} n={n} failed:\n{err.decode()[-1500:]}")


async def measure(specs: list[str], variants: list[str], n1: int, n2: int) -> int:
    from poolbridge.cli.bench import run as bench
    from poolbridge.testing.servers.proxy import TcpProxy

    backend_of = {name: backend for name, backend in bench.STACKS}
    proxies: dict[str, TcpProxy] = {}
    env = dict(os.environ)
    for backend, url in URLS.items():
        u = urlsplit(url)
        proxy = await TcpProxy(u.hostname or "127.0.0.1", u.port or 0).start()
        proxies[backend] = proxy
        env[ENV_OF[backend]] = proxy.url_for(url)
    more = 0
    try:
        print(f"{'cell':34}" + "".join(f"{v:>12}" for v in variants))
        for spec in specs:
            proxy = proxies[backend_of[spec.rsplit(":", 2)[0]]]
            per: dict[str, float] = {}
            for variant in variants:
                counts = []
                for n in (n1, n2):
                    before = proxy.round_trips
                    await _child(spec, variant, n, env)
                    counts.append(proxy.round_trips - before)
                per[variant] = (counts[1] - counts[0]) / (n2 - n1)
            flag = ""
            if "hand" in per and per.get("poolbridge", 0.0) > per["hand"] + 0.05:
                flag = "  MORE"
                more += 1
            print(f"{spec:34}" + "".join(f"{per[v]:12.2f}" for v in variants) + flag)
    finally:
        for proxy in proxies.values():
            await proxy.close()
    return 1 if more else 0


def main(argv: list[str] | None = None) -> int:
    from poolbridge.cli.bench import run as bench

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stack", action="append", help="only this stack (repeatable)")
    parser.add_argument("--query", default="select1,orm", help="comma-separated")
    parser.add_argument("--tasks", type=int, default=1, help="concurrent tasks")
    parser.add_argument("--variants", default="poolbridge,hand,raw", help="comma-separated")
    parser.add_argument("--n", nargs=2, type=int, default=(50, 250), metavar=("N1", "N2"))
    ns = parser.parse_args(argv)
    names = ns.stack or [name for name, _ in bench.STACKS]
    specs = [f"{name}:{q}:{ns.tasks}" for name in names for q in ns.query.split(",")]
    return asyncio.run(measure(specs, ns.variants.split(","), *ns.n))


if __name__ == "__main__":
    raise SystemExit(main())
