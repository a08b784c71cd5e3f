# Quick start: `make run` trains on the bundled data; `make test` runs the suite on every backend.
# `make docs` builds the documentation site into site/.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
BACKENDS ?= jax torch tensorflow
# torch is pinned here because this machine has a CPU wheel of 2.13.0 on disk; a looser pin
# pulls a CUDA build of several GB. Users elsewhere may use any torch >= 2.4.
TORCH_PIN ?= torch==2.13.0
# Two test processes: most tests keep one core busy, and CI machines have two.
PYTEST_WORKERS ?= 2
PYTEST_ARGS ?=

.PHONY: run test docs venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

venv: $(BIN)/python

run: venv
	$(PIP) install --quiet -e '.[jax,cli]'
	$(BIN)/tabattn fit

test: venv
	$(PIP) install --quiet '$(TORCH_PIN)' -e '.[dev,cli,jax,torch,tensorflow]'
	@status=0; for backend in $(BACKENDS); do \
	  echo "=== tests on the $$backend backend ==="; \
	  KERAS_BACKEND=$$backend $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS) || status=1; \
	done; exit $$status

# The site's figures are drawn during the build (docs/hooks.py, on JAX); --strict fails on any
# warning (a broken link, a docstring that does not parse). NO_MKDOCS_2_WARNING silences the
# Material theme's notice about MkDocs 2.
docs: venv
	$(PIP) install --quiet -e '.[docs,jax,cli]'
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache runs site docs/figures
