# Two entry points: `make demo` runs the product, `make test` runs every check CI runs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint typecheck pytest demo clean image-test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,demo]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check daemon tests
	$(BIN)/ruff format --check daemon tests

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

test: lint typecheck pytest

# Opt-in: build the Dockerfile with buildah from a locally made base and run it
# against moto (root, buildah, debootstrap; about 90 s). CI only lints it.
image-test: $(STAMP)
	SECRETSYNC_IMAGE_TEST=1 $(BIN)/pytest tests/test_image.py

demo: $(STAMP)
	$(BIN)/secretsync demo

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache secretsync-demo
