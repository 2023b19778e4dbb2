# perf-agent — every target creates/updates .venv first, so a fresh clone needs only `make run` / `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv run test test-only lint typecheck fmt migrate check-migrations demo console clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Service on embedded defaults (embedded PostgreSQL under .perf-agent/); Swagger at /docs
run: venv
	$(BIN)/perf-agent serve

## lint + typecheck + the whole test suite (real PostgreSQL, real k6)
test: venv lint typecheck test-only

test-only: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

fmt: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: venv
	$(BIN)/mypy

migrate: venv
	$(BIN)/perf-agent db upgrade

check-migrations: venv
	$(BIN)/perf-agent db upgrade && $(BIN)/alembic check

demo: venv
	$(BIN)/perf-agent demo

## Rebuild the web console (console/src → app/console/static) from the locked npm packages
console:
	cd console && npm ci --no-audit --no-fund && node build.mjs

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
