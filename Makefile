# Two commands do all set-up on a fresh machine with Python >= 3.11:
#   make demo   create .venv, install ebmlab, run `ebmlab demo` (every family on digits)
#   make test   create .venv, install ebmlab with dev tools, check the layering contract
#               (import-linter), run the default test suite
# torch is installed first, pinned (a CPU build where one is available locally), so that the
# project's own install never pulls a multi-GB CUDA build; set TORCH=... to choose another.

PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-slow bench lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "$(TORCH)"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ebmlab demo

test: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/ebmlab bench --json

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

clean:
	rm -rf $(VENV) runs .pytest_cache
