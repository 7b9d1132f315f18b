"""poolbridge test suite (a package, so tests/sqlalchemy/ etc. do not shadow the real modules)."""
