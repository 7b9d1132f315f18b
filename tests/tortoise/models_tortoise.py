"""A Tortoise model with a table name unique to this test process."""

from __future__ import annotations

import uuid

from tortoise import fields
from tortoise.models import Model

TABLE = f"pb_tortoise_item_{uuid.uuid4().hex[:10]}"


class Item(Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=50)

    class Meta:
        table = TABLE
