"""The model the Tortoise migration example creates a table for."""

from __future__ import annotations

import os

from tortoise import fields
from tortoise.models import Model


class ExampleNote(Model):
    id = fields.IntField(primary_key=True)
    text = fields.CharField(max_length=100)

    class Meta:
        table = os.environ.get("EXAMPLE_TABLE", "example_note")
