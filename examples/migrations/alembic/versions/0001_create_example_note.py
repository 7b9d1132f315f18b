"""create the example_note table

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

#: the table name can be changed so that parallel test runs do not collide
TABLE = os.environ.get("EXAMPLE_TABLE", "example_note")


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("text", sa.String(100), nullable=False),
    )


def downgrade() -> None:
    op.drop_table(TABLE)
