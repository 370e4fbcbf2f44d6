# One-command entry points. Each target does its own set-up, idempotently.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo serve test lint bench bench-clv clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/segmint generate --customers 20000 --seed 1 --out demo/orders.parquet
	$(BIN)/segmint run demo/orders.parquet --out demo/run --workspace demo/workspace --name demo
	@echo "Open demo/run/report.html; list runs with: $(BIN)/segmint runs list --workspace demo/workspace"
	@echo "Serve it (REST API, docs at http://127.0.0.1:8000/docs): make serve"

# the API over the demo workspace; the key is made on first start (demo/workspace/api-key)
serve: install
	test -f demo/workspace/registry.db || $(MAKE) demo
	$(BIN)/segmint serve --workspace demo/workspace --host 127.0.0.1 --port 8000

test: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

bench: install
	$(BIN)/python benchmarks/bench_pipeline.py --customers 1000000

# lifetimes (unmaintained) is compared in a throwaway venv, never installed into .venv
bench-clv: install
	test -x /tmp/ltvenv/bin/python || (python3 -m venv /tmp/ltvenv && /tmp/ltvenv/bin/pip install -q lifetimes pyarrow)
	$(BIN)/python benchmarks/bench_clv.py --customers 1000000 --lifetimes-python /tmp/ltvenv/bin/python

clean:
	rm -rf demo .pytest_cache
