"""The docs are tested: every ```python block of docs/*.md and README.md runs, and the
generated adapter pages are current.

Blocks of one file run in order, in one namespace and one event loop (top-level ``await``
allowed), in a subprocess per file, against the real test servers: the placeholder URLs
``postgresql://app@127.0.0.1/app`` and ``mysql://app@127.0.0.1/app`` are pointed at them. A
block preceded by ``<!-- not-tested: fragment -->`` is skipped (used sparingly).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from poolbridge.cli import docs_gen

ROOT = Path(__file__).resolve().parent.parent
DOC_FILES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
FRAGMENT = "<!-- not-tested: fragment -->"
#: doc files whose code blocks are known not to run: strict xfail, so an entry must go (and
#: the test then guards the file) as soon as that file's blocks run
PENDING = {}
_BLOCK = re.compile(r"(?P<before>[^\n]*)\n```python\n(?P<code>.*?)\n```", re.S)

RUNNER = r"""
import ast, asyncio, json, sys
blocks = json.loads(sys.stdin.read())
ns = {"__name__": "__docs__"}
loop = asyncio.new_event_loop()
for i, (line, code) in enumerate(blocks):
    compiled = compile(code, f"{sys.argv[1]}:{line}", "exec",
                       flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(compiled, ns)
    if asyncio.iscoroutine(result):
        loop.run_until_complete(result)
print("ran", len(blocks), "blocks")
"""


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """(line number, code) of every tested python block of a Markdown file."""
    text = path.read_text(encoding="utf-8")
    out = []
    for m in _BLOCK.finditer(text):
        if m.group("before").strip() == FRAGMENT:
            continue
        out.append((text[: m.start("code")].count("\n") + 1, m.group("code")))
    return out


def test_block_extraction_honours_fragment_marker(tmp_path: Path) -> None:
    md = tmp_path / "x.md"
    md.write_text(f"a\n```python\nx = 1\n```\n{FRAGMENT}\n```python\nnot python(\n```\n")
    assert python_blocks(md) == [(3, "x = 1")]


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: p.name)
def test_python_blocks_run(
    path: Path, pg_url: str, mysql_url: str, request: pytest.FixtureRequest
) -> None:
    if path.name in PENDING:
        request.applymarker(pytest.mark.xfail(reason=PENDING[path.name], strict=True))
    blocks = python_blocks(path)
    if not blocks:
        pytest.skip(f"{path.name} has no python block")
    urls = {"postgresql://app@127.0.0.1/app": pg_url, "mysql://app@127.0.0.1/app": mysql_url}
    for old, new in urls.items():
        blocks = [(n, code.replace(old, new)) for n, code in blocks]
    env = {k: v for k, v in os.environ.items() if not k.startswith("POOLBRIDGE_")}
    env["POOLBRIDGE_URL"] = pg_url  # for blocks showing PoolConfig.from_env()
    r = subprocess.run(
        [sys.executable, "-c", RUNNER, str(path.relative_to(ROOT))],
        input=json.dumps(blocks), cwd=ROOT / "examples", env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, f"{path.name}:\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
    assert f"ran {len(blocks)} blocks" in r.stdout


def test_generated_adapter_pages_are_current() -> None:
    stale = [
        str(p.relative_to(ROOT))
        for p, text in docs_gen.generate(ROOT).items()
        if not p.exists() or p.read_text(encoding="utf-8") != text
    ]
    assert not stale, f"regenerate with `python -m poolbridge.cli.docs_gen`: {stale}"


def test_generated_table_reflects_translate() -> None:
    from poolbridge.adapters.registry import get_adapter

    # asyncpg: statement_timeout is a server setting, min_size is the engine's job
    asyncpg = get_adapter("asyncpg")
    assert "server_settings.statement_timeout" in docs_gen.knob_cell(
        asyncpg, "postgresql", "asyncpg", "statement_timeout"
    )
    assert docs_gen.knob_cell(asyncpg, "postgresql", "asyncpg", "min_size").startswith(
        "poolbridge:"
    )
    sa = get_adapter("sqlalchemy")
    assert docs_gen.knob_cell(sa, "postgresql", "asyncpg", "max_size") == "`pool_size`"
    assert docs_gen.knob_cell(sa, "sqlite", "aiosqlite", "session").startswith("**no**")
