# spanline developer entry points. Every target bootstraps its own virtualenv, so
# `make up` and `make test` work on a fresh machine with only python3 installed.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
# the compiled span row builder (setup.py): rebuilt when its source changes
EXT    := $(VENV)/.ext-$(shell cat setup.py services/spanline/spans/wire_spans.pyx | sha1sum | cut -c1-12)
PYTEST_ARGS ?=

.PHONY: help venv up test lint typecheck unit bench protos clean

help:
	@echo "make up     - start the whole pipeline locally (broker, ingest, redactor, writer)"
	@echo "make test   - lint (ruff), types (mypy), proto freshness and the whole test suite"
	@echo "make bench  - run benchmarks; JSON results under benchmarks/results/"
	@echo "make protos - regenerate protobuf code from protos/"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

$(EXT): $(STAMP) setup.py services/spanline/spans/wire_spans.pyx
	$(BIN)/python setup.py -q build_ext --inplace
	@rm -f $(VENV)/.ext-* && touch $(EXT)

venv: $(STAMP) $(EXT)

up: $(STAMP) $(EXT)
	$(BIN)/spanline up

lint: $(STAMP)
	$(BIN)/ruff check services tests benchmarks setup.py
	$(BIN)/ruff format --check services tests benchmarks setup.py

typecheck: $(STAMP) $(EXT)
	$(BIN)/mypy

unit: $(STAMP) $(EXT)
	$(BIN)/pytest -q tests/unit $(PYTEST_ARGS)

test: $(STAMP) $(EXT) lint typecheck
	$(BIN)/pytest -q -p no:cacheprovider $(PYTEST_ARGS)

bench: $(STAMP) $(EXT)
	$(BIN)/python -m benchmarks.run_all $(BENCH_ARGS)

protos: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m grpc_tools.protoc -Iprotos \
	  --python_out=services --mypy_out=services protos/spanline/v1/*.proto
	@touch services/spanline/v1/__init__.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build
	rm -f services/spanline/spans/wire_spans.c services/spanline/spans/wire_spans.*.so
