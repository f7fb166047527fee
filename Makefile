# Two entry points: `make demo` runs the product, `make test` runs every check CI runs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint typecheck pytest demo clean image-test bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,demo]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check daemon tests bench
	$(BIN)/ruff format --check daemon tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

test: lint typecheck pytest

# Opt-in: build the Dockerfile with buildah from a locally made base and run it
# against moto (root, buildah, debootstrap; about 90 s). CI only lints it.
image-test: $(STAMP)
	SECRETSYNC_IMAGE_TEST=1 $(BIN)/pytest tests/test_image.py

# Benchmarks (reports, not tests): secretsync against the AWS CLI, a naive script and
# the raw client, side by side in one run against a local moto server. The AWS CLI
# gets a venv of its own (its botocore pin differs from ours).
AWS_VENV := bench/.venv-aws
$(AWS_VENV)/bin/aws:
	$(PYTHON) -m venv $(AWS_VENV)
	$(AWS_VENV)/bin/pip install --quiet awscli

bench: $(STAMP) $(AWS_VENV)/bin/aws
	$(BIN)/python -m bench.bench

demo: $(STAMP)
	$(BIN)/secretsync demo

clean:
	rm -rf $(VENV) $(AWS_VENV) .mypy_cache .ruff_cache .pytest_cache secretsync-demo
