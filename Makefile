# The two commands the README starts with: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install test demo lint bench

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

install: $(BIN)/.installed

test: install
	bash scripts/system-deps.sh
	$(BIN)/pytest -n 4 --dist loadgroup

demo: install
	PAYQ_SKIP_BROWSER=1 bash scripts/system-deps.sh
	$(BIN)/payq demo $(ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: install
	bash scripts/system-deps.sh
	$(BIN)/python -m benchmarks $(ARGS)
