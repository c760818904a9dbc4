# Two commands do all set-up on a fresh machine with Python >= 3.11:
#   make demo   create .venv, install ebmlab, run `ebmlab demo` (every family on digits)
#   make test   create .venv, install ebmlab with dev tools, check the layering contract
#               (import-linter), run the default test suite
#   make docs   install the docs tools, build the documentation site (tutorials executed) into
#               build/site, strictly: a broken link, API object or tutorial fails the build
# torch is installed first, pinned (a CPU build where one is available locally), so that the
# project's own install never pulls a multi-GB CUDA build; set TORCH=... to choose another.

PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.installed-docs

.PHONY: demo test test-slow bench gpu-check lint docs clean

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

# on a machine with a CUDA GPU, in under 5 minutes: the tests that take a device, on CUDA, then
# the RBM, AIS and Langevin benchmarks on the GPU against its own matmul peak (CUDA graphs for the
# inner loops, the RBM update at float32/TF32/bfloat16, the PixelCNN and VAE trained at each
# training precision); the benchmarks run even when a test fails, and print each case as it
# finishes; `ebmlab bench --gpu rbm ais` runs only those cases; `ebmlab bench --gpu --dry-run`
# runs the same check on the CPU with tiny sizes (the default test suite does)
gpu-check: $(STAMP)
	timeout 300 sh -c '$(BIN)/python -m pytest -q -p no:cacheprovider -m device --device cuda tests; s=$$?; $(BIN)/ebmlab bench --gpu --json || s=1; exit $$s'

$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev,docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

clean:
	rm -rf $(VENV) runs .pytest_cache
