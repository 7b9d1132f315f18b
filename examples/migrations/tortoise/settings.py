"""TORTOISE_ORM for Tortoise's own migration tool, built from the app's poolbridge.toml.

    cd examples/migrations/tortoise && tortoise -c settings.TORTOISE_ORM init
    tortoise -c settings.TORTOISE_ORM makemigrations && tortoise -c settings.TORTOISE_ORM migrate

``tortoise_config`` returns the same dict the app passes to ``Tortoise.init``, so the
migration tool connects through poolbridge's pool engine with the app's limits.
"""

from __future__ import annotations

import os
from pathlib import Path

import poolbridge
from poolbridge.adapters.tortoise import tortoise_config

CONFIG_FILE = Path(__file__).resolve().parent.parent / "poolbridge.toml"

TORTOISE_ORM = tortoise_config(
    poolbridge.load(path=CONFIG_FILE, name="tortoise_migrations"),
    apps={
        # the label can be changed so that parallel test runs do not collide
        os.environ.get("EXAMPLE_APP", "notes"): {
            "models": ["models"],
            "default_connection": "default",
            "migrations": "migrations",
        }
    },
)
