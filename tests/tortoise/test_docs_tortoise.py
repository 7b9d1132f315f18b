"""docs/adapters/tortoise.md shows the adapter's current translation table."""

from __future__ import annotations

from pathlib import Path

from poolbridge.adapters.tortoise import doc_table, keys_table

PAGE = Path(__file__).resolve().parents[2] / "docs" / "adapters" / "tortoise.md"


def test_translation_table_in_docs_is_current() -> None:
    text = PAGE.read_text()
    block = text.split("<!-- translation-table:start -->\n", 1)[1]
    block = block.split("\n<!-- translation-table:end -->", 1)[0]
    assert block == doc_table(), (
        "docs/adapters/tortoise.md is out of date: paste the output of "
        "python -c 'from poolbridge.adapters.tortoise import doc_table; print(doc_table())'"
    )
    assert "| `acquire_timeout` |" in block and "**no**" in block


def test_keys_table_in_docs_is_current() -> None:
    text = PAGE.read_text()
    block = text.split("<!-- keys-table:start -->\n", 1)[1]
    block = block.split("<!-- keys-table:end -->", 1)[0]
    assert block == keys_table(), (
        "docs/adapters/tortoise.md is out of date: paste the output of "
        "python -c 'from poolbridge.adapters.tortoise import keys_table; print(keys_table())'"
    )
    assert "| `schema` |" in block and "**refused**" in block
