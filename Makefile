# One task runner for the project. `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 5000
# The PostgreSQL database the second test pass uses (CI sets it explicitly).
PG_TEST_URI ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
TORCH_PINS := torch==2.14.1 torchvision==0.29.1

.PHONY: help demo serve install install-dev test test-sqlite test-postgres bench lint format typecheck clean

help:
	@echo "make demo           install, set up the demo study and serve it on port $(PORT)"
	@echo "make test           install everything and run the whole test suite (SQLite, then PostgreSQL)"
	@echo "make test-sqlite    run the test suite on SQLite only"
	@echo "make test-postgres  run the database tests on PostgreSQL ($(PG_TEST_URI))"
	@echo "make lint           ruff check and ruff format --check"
	@echo "make typecheck      mypy on the typed packages"
	@echo "make bench          list the benchmarks (each prints its own figures)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The study server alone: no torch.
install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

# Tests and metrics: torch from the pinned CPU/CUDA wheels, then the extras.
install-dev: $(BIN)/python
	$(BIN)/pip install --quiet $(TORCH_PINS)
	$(BIN)/pip install --quiet -e '.[dev,metrics]'
	@scripts/ensure-chromium

demo: install
	$(BIN)/python -m study_server.instance
	$(BIN)/flask --app study_server demo --port $(PORT)
	$(BIN)/flask --app study_server run --host 127.0.0.1 --port $(PORT)

serve: install
	$(BIN)/gunicorn --worker-class gthread --workers 2 --threads 8 --preload \
		--bind 127.0.0.1:$(PORT) 'study_server:create_app()'

test: install-dev
	$(MAKE) test-sqlite
	$(MAKE) test-postgres

test-sqlite:
	$(BIN)/python -m pytest

test-postgres:
	STUDY_TEST_DATABASE_URI=$(PG_TEST_URI) $(BIN)/python -m pytest -m db

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format:
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck:
	$(BIN)/mypy

bench:
	@ls benchmarks/*/*.py benchmarks/*/*/*.py 2>/dev/null; echo "Run one with: $(BIN)/python <path>"

clean:
	rm -rf build dist .pytest_cache .ruff_cache .mypy_cache test-artifacts
