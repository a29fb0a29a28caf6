# qbucket: the two commands of the README are `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint format typecheck unit integration faults bench bytecode server-stop clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	$(MAKE) --no-print-directory bytecode
	touch $(STAMP)

demo: $(STAMP)  ## sync a sample tree up and back on the embedded SeaweedFS server
	$(BIN)/python scripts/demo.py

test: lint typecheck  ## lint, types, then every test (unit and integration)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts

format: $(STAMP)
	$(BIN)/ruff format src tests scripts
	$(BIN)/ruff check --fix src tests scripts

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit

integration: $(STAMP)
	$(BIN)/pytest tests/integration

faults: $(STAMP)
	$(BIN)/pytest tests/faults

bench: $(STAMP) bytecode  ## the peer benchmark (../shared/bench) with qbucket's row
	../shared/bench/setup.sh
	$(PYTHON) ../shared/bench/run.py --qbucket-python $(BIN)/python --out bench-results.json

# An editable install leaves qbucket's own modules uncompiled, and with PYTHONDONTWRITEBYTECODE
# set every start would compile them again (~50 ms): compile once, as pip does for wheels. -f:
# compileall keeps a .pyc whose source changed within the same second (it compares whole
# seconds only), which the import then rejects and compiles again on every start.
bytecode:
	$(BIN)/python -m compileall -f -q src

server-stop: $(STAMP)
	$(BIN)/qbucket server stop

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache
