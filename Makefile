# Retail Sync Gateway: the two commands of the Quick start, and the checks behind `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint typecheck architecture dockerfile pytest clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall whenever pyproject.toml changes.
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@ $(VENV)/.installed-run

# The OAuth2 issuer is the address clients use; for `make run` that is this host and port.
run: export GATEWAY_PUBLIC_BASE_URL ?= http://$(HOST):$(PORT)
run: $(VENV)/.installed-run
	$(BIN)/retail-gateway migrate
	$(BIN)/retail-gateway seed-demo
	@echo ""
	@echo "Retail Sync Gateway on http://$(HOST):$(PORT)"
	@echo "  liveness   http://$(HOST):$(PORT)/healthz   readiness http://$(HOST):$(PORT)/readyz"
	@echo "  system API http://$(HOST):$(PORT)/system/docs"
	@echo "  process API http://$(HOST):$(PORT)/process/docs"
	@echo "  partner API http://$(HOST):$(PORT)/partner/v2/docs (v1, deprecated: /partner/v1/docs)"
	@echo "  ops console http://$(HOST):$(PORT)/ops/ (an operator first: $(BIN)/retail-gateway operators add NAME)"
	@echo "  demo client credentials: above, and in var/demo-credentials.json"
	@echo ""
	$(BIN)/retail-gateway serve --host $(HOST) --port $(PORT)

test: $(VENV)/.installed-test lint typecheck architecture dockerfile pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

architecture: $(VENV)/.installed-test
	$(BIN)/lint-imports

dockerfile: $(VENV)/.installed-test
	$(BIN)/hadolint Dockerfile

# Tests run on every core (pytest-xdist); Tryton's tests stay together on one worker. The 25
# slowest tests are listed at the end, to keep an eye on the suite's time.
PYTEST_WORKERS ?= auto
pytest: $(VENV)/.installed-test
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup --durations=25 $(PYTEST_ARGS)

# Not part of `make test`: the gateway against raw FastAPI under wrk, on SQLite and (when
# TEST_DATABASE_URL or BENCH_DATABASE_URL is set) PostgreSQL, then the growth figures (BENCHMARKS.md).
BENCH_ARGS ?= --seconds 8 --runs 2
bench: $(VENV)/.installed-test
	@command -v wrk >/dev/null 2>&1 || { echo "wrk is not installed: sudo apt-get install wrk (Debian package wrk)"; exit 2; }
	$(BIN)/python -m tests.bench.bench_http $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var reports .mypy_cache .ruff_cache .pytest_cache .hypothesis
