"""docs/adapters/peewee_async.md shows the adapter's current translation table."""

from __future__ import annotations

from pathlib import Path

from poolbridge.adapters.peewee_async import doc_table, stock_key_table

PAGE = Path(__file__).resolve().parents[2] / "docs" / "adapters" / "peewee_async.md"


def test_translation_table_in_docs_is_current() -> None:
    text = PAGE.read_text()
    block = text.split("<!-- translation-table:start -->\n", 1)[1]
    block = block.split("\n<!-- translation-table:end -->", 1)[0]
    assert block == doc_table(), (
        "docs/adapters/peewee_async.md is out of date: paste the output of "
        "python -c 'from poolbridge.adapters.peewee_async import doc_table; print(doc_table())'"
    )
    assert "| `acquire_timeout` |" in block and "**no**" in block


def test_stock_key_table_in_docs_is_current() -> None:
    text = PAGE.read_text()
    block = text.split("<!-- stock-keys:start -->\n", 1)[1]
    block = block.split("\n<!-- stock-keys:end -->", 1)[0]
    assert block == stock_key_table(), (
        "docs/adapters/peewee_async.md is out of date: paste the output of python -c "
        "'from poolbridge.adapters.peewee_async import stock_key_table; print(stock_key_table())'"
    )
    assert "| `sql_mode` |" in block and "| `minsize` |" in block and "refused" in block
