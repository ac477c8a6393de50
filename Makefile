# Each target is a thin call; the logic lives in Python (skylift/, layers/, benchmarks/).
# `make demo` and `make test` set everything up on a fresh machine (venv, Python deps, CDK CLI).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test test-fast bench synth layer lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml $(wildcard package.json) $(wildcard package-lock.json)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,cdk]"
	if [ -f package.json ]; then npm install --no-audit --no-fund --loglevel=error; fi
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/skylift demo

# The layer is built first (pip for Lambda's platform, cached): the artifact test runs it.
test: layer
	$(BIN)/python -m pytest -n 2 --dist loadgroup

test-fast: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup tests/unit

bench: $(STAMP)
	$(BIN)/python -m benchmarks

synth: $(STAMP)
	JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION=1 npx cdk synth --quiet

# Both examples: the onnx one adds the score functions' onnx layer and retrain's exports layer.
layer: $(STAMP)
	$(BIN)/python -m layers.build
	$(BIN)/python -m layers.build --config examples/churn/skylift-onnx.toml

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) node_modules cdk.out .pytest_cache
