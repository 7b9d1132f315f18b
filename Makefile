# Every install step lives here: a fresh machine needs only Python 3.11+ and make.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP_ALL := $(VENV)/.installed-all-dev
STAMP_DEMO := $(VENV)/.installed-demo

.PHONY: demo test test-latest soak lint typecheck bench docs clean pgbouncer compiled compiled-test

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(STAMP_DEMO): pyproject.toml | $(PY)
	$(PIP) install -q -e '.[all]'
	touch $@

$(STAMP_ALL): pyproject.toml | $(PY)
	$(PIP) install -q -e '.[all,dev]'
	touch $@ $(STAMP_DEMO)

demo: $(STAMP_DEMO)
	$(VENV)/bin/poolbridge check $(DEMO_ARGS)

lint: $(STAMP_ALL)
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/ruff format --check src tests benchmarks examples
	$(VENV)/bin/mypy --strict src/poolbridge

# pgbouncer (Debian package) for the pgbouncer-mode tests; installed only when missing.
pgbouncer:
	@command -v pgbouncer >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq pgbouncer; }

# Most of the suite waits on servers and timeouts rather than the CPU: four workers (one test
# file per worker, so module fixtures stay together) keep `make test` well under 10 minutes.
PYTEST_WORKERS ?= 4

test: lint pgbouncer
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)
	$(MAKE) compiled-test

# The compiled build (docs/performance.md, "The compiled build"): hatch_build.py compiles the
# modules listed in src/poolbridge/engine/build.py with mypyc into build/compiled, a copy of
# src/ with the extension modules beside the .py files (an unchanged module is not compiled
# again), and the engine's invariant tests run on it: the fake-driver suite with the
# 10,000-cycle cancellation test and the real-server engine tests. With
# POOLBRIDGE_EXPECT_COMPILED=1 the run fails at once if the modules imported are not the
# compiled ones, so it can never pass on pure Python by mistake. About a minute.
COMPILED_DIR := $(CURDIR)/build/compiled
COMPILED_TESTS ?= tests/engine tests/test_cli.py::test_version_and_schema

compiled: $(STAMP_ALL)
	$(PY) hatch_build.py $(COMPILED_DIR)

compiled-test: compiled
	POOLBRIDGE_EXPECT_COMPILED=1 PYTHONPATH=$(COMPILED_DIR) \
	  $(PY) -m pytest -n 2 --dist loadfile $(COMPILED_TESTS) $(COMPILED_PYTEST_ARGS)

# test-latest: the conformance suite against the newest release of every ORM and driver, in
# a venv of its own, to learn what their next releases break before users do. pyproject.toml
# caps a library only where poolbridge uses a private member of it; here those caps are
# ignored on purpose (pip names each cap it passes and installs the newest anyway), because
# the newest release past a cap is exactly what this run is for.
LATEST_VENV ?= .venv-latest
LATEST_PY := $(LATEST_VENV)/bin/python
LATEST_PACKAGES := 'sqlalchemy[asyncio]' asyncpg 'psycopg[binary]' psycopg-pool aiomysql asyncmy \
	aiopg aiosqlite tortoise-orm pypika-tortoise peewee peewee-async
# the conformance columns (four at a time: they wait on servers more than on the CPU) and
# the pytest plugin: a few minutes, well inside the 10 minutes .ci/run gives this target
LATEST_TESTS ?= tests/test_conformance.py tests/test_plugin.py

test-latest:
	test -x $(LATEST_PY) || python3 -m venv $(LATEST_VENV)
	$(LATEST_PY) -m pip install -q --upgrade pip
	$(LATEST_PY) -m pip install -q --upgrade --upgrade-strategy eager -e '.[all,dev]'
	$(LATEST_PY) -m pip install -q --upgrade $(LATEST_PACKAGES)
	@$(LATEST_PY) -m pip list --format=freeze 2>/dev/null \
	  | grep -iE '^(sqlalchemy|asyncpg|psycopg|psycopg-pool|aiomysql|asyncmy|aiopg|aiosqlite|tortoise-orm|pypika-tortoise|peewee|peewee-async)==' \
	  | tr '\n' ' ' | sed 's/^/test-latest: /;s/ $$/\n/'
	POOLBRIDGE_CONFORMANCE_JOBS=4 $(LATEST_PY) -m pytest -n 2 --dist loadfile $(LATEST_TESTS) $(PYTEST_ARGS)

soak: $(STAMP_ALL)
	$(PY) -m pytest -m soak -p no:cacheprovider $(PYTEST_ARGS)

bench: $(STAMP_ALL)
	$(PY) -m poolbridge bench --json bench.json --png bench.png

clean:
	rm -rf $(VENV) $(LATEST_VENV) build dist .mypy_cache .ruff_cache .pytest_cache
