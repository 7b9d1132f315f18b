"""``python -m poolbridge``: the same as the ``poolbridge`` console script."""

from __future__ import annotations

from poolbridge.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
