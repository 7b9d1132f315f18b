"""A peewee-async model with a table name unique to this test process (bound per test)."""

from __future__ import annotations

import uuid

import peewee
import peewee_async

TABLE = f"pb_peewee_item_{uuid.uuid4().hex[:10]}"


class Item(peewee_async.AioModel):  # type: ignore[misc]
    name = peewee.CharField(max_length=50)

    class Meta:
        table_name = TABLE
