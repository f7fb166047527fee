# Two entry points: `make demo` runs the product, `make test` runs every check CI runs
# (lint, types, the Java library, then every test in $(PYTEST_WORKERS) xdist workers).
# `make test-fast` runs only the tests that start no subprocess, JVM or server (the ones
# not marked `slow`; tests/conftest.py marks them and fails an unmarked one that starts
# one): < 30 s, for the edit-test loop.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# stamps: the project installed with the test and demo extras / with the demo extra only
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo
# import-linter and twine get a venv of their own: both pull in rich, which structlog
# then imports in every daemon a test starts (≈ 0.1 CPU-s each; production has no rich)
TOOLS_VENV ?= .venv-tools
TOOLS_STAMP := $(TOOLS_VENV)/.installed

# Python writes .pyc caches (into __pycache__/, ignored by git) even where the environment
# says not to: without them every daemon a test starts compiles the package again
# (≈ 0.3 CPU-s each) and every xdist worker rewrites every test module's assertions
unexport PYTHONDONTWRITEBYTECODE

.PHONY: test test-fast lint typecheck pytest java-test demo clean image-test bench lock release-check

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,demo]'
	touch $(STAMP) $(DEMO_STAMP)

$(TOOLS_STAMP): Makefile
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/pip install --quiet --upgrade pip
	$(TOOLS_VENV)/bin/pip install --quiet 'import-linter>=2.1' 'twine>=5'
	touch $(TOOLS_STAMP)

$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[demo]'
	touch $(DEMO_STAMP)

lint: $(STAMP) $(TOOLS_STAMP) $(BIN)/actionlint
	$(BIN)/ruff check daemon tests bench packaging
	$(BIN)/ruff format --check daemon tests bench packaging
	$(BIN)/actionlint .github/workflows/*.yml
	PYTHONPATH=daemon $(TOOLS_VENV)/bin/lint-imports --no-cache

# mypy --strict on the package, the tests and the benchmarks (pyproject [tool.mypy])
typecheck: $(STAMP)
	$(BIN)/mypy

# loadgroup: the tests sharing the Kafka broker stay in one worker (one broker at a time);
# each worker has its own moto server and daemon zygote. Five workers on two CPUs: the tests
# mostly wait (on this 2-CPU machine ≈ 152 s with 5, ≈ 165 s with 4, ≈ 186 s with 3, ≈ 240 s
# with 2; ≈ 190 s with 4 or 5 under a CPU hog)
PYTEST_WORKERS ?= 5
pytest: $(STAMP) $(TOOLS_STAMP)
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup

test-fast: $(STAMP)
	$(BIN)/pytest -m "not slow" -n $(PYTEST_WORKERS)

# The Java library (java/): build and unit tests against the newest 3.x client, then against
# the newest 4.x (the jars the end-to-end tests load come from this last build; the stamp
# tells tests/support/kafka.py they are current), then the class paths of the end-to-end
# tests' broker and clients resolved into java/target/e2e/. Maven fetches what it needs
# from Maven Central into ~/.m2 once.
MVN ?= mvn
MVN_FLAGS ?= -B -q
java-test: $(STAMP)
	$(MVN) $(MVN_FLAGS) -f java/pom.xml -pl sr-api,secretsync-kafka -am test -Dkafka.version=3.9.2
	$(MVN) $(MVN_FLAGS) -f java/pom.xml verify
	mkdir -p java/target/e2e && touch java/target/e2e/built.stamp  # tests/support/kafka.py: jars are current
	$(BIN)/python -m tests.support.kafka

test: lint typecheck java-test pytest

# Opt-in: build the Dockerfile with buildah from a locally made base and run it
# against moto (root, buildah, debootstrap; about 90 s). CI only lints it.
image-test: $(STAMP)
	SECRETSYNC_IMAGE_TEST=1 $(BIN)/pytest tests/e2e/test_image.py

# What the release workflow (.github/workflows/release.yml) does, checked here: the
# workflow lints clean, the sdist and the wheel build and pass `twine check`, the
# package version has its dated CHANGELOG entry, and the image builds and runs.
ACTIONLINT_VERSION ?= v1.7.12
$(BIN)/actionlint: | $(BIN)/python
	GOBIN=$(abspath $(BIN)) go install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)

release-check: $(STAMP) $(TOOLS_STAMP) $(BIN)/actionlint
	$(BIN)/actionlint .github/workflows/*.yml
	rm -rf dist
	$(BIN)/python -m build --sdist --wheel --outdir dist .
	$(TOOLS_VENV)/bin/twine check --strict dist/*
	$(BIN)/python packaging/release/check_version.py v$$($(BIN)/python -c 'import secretsync; print(secretsync.__version__)')
	$(MAKE) image-test

# Benchmarks (reports, not tests): secretsync against the AWS CLI, a naive script and
# the raw client, side by side in one run against a local moto server. secretsync runs
# from a venv holding what the image holds (requirements.lock and the project, no test
# tools); the AWS CLI gets a venv of its own (its botocore pin differs from ours).
AWS_VENV := bench/.venv-aws
PROD_VENV := bench/.venv-prod
$(AWS_VENV)/bin/aws:
	$(PYTHON) -m venv $(AWS_VENV)
	$(AWS_VENV)/bin/pip install --quiet awscli

$(PROD_VENV)/.installed: requirements.lock pyproject.toml $(shell find daemon -name '*.py')
	$(PYTHON) -m venv $(PROD_VENV)
	$(PROD_VENV)/bin/pip install --quiet --no-deps -r requirements.lock
	$(PROD_VENV)/bin/pip install --quiet --no-deps --force-reinstall .
	touch $@

bench: $(STAMP) $(AWS_VENV)/bin/aws $(PROD_VENV)/.installed
	SECRETSYNC_BENCH_VENV=$(PROD_VENV) $(BIN)/python -m bench.bench

# Regenerate requirements.lock: the image's runtime dependencies (pyproject's
# [project] dependencies, transitively) at exact versions with the sha256 of every
# file PyPI has for them, resolved for CPython 3.11 on Linux from PyPI only (no
# local index or find-links). Then prove that pip finds a hash-matching wheel of
# every pin for both image architectures, x86_64 and aarch64 (manylinux2014 up to
# glibc 2.36, Debian bookworm's).
UV_VERSION ?= 0.13.8
lock: | $(BIN)/python
	$(BIN)/pip install --quiet "uv==$(UV_VERSION)"
	$(BIN)/uv pip compile pyproject.toml --quiet --no-config --generate-hashes \
	  --python-version 3.11 --python-platform linux --default-index https://pypi.org/simple \
	  --custom-compile-command "make lock" --output-file requirements.lock
	set -e; for arch in x86_64 aarch64; do \
	  platforms="--platform manylinux2014_$$arch"; \
	  for minor in $$(seq 17 36); do platforms="$$platforms --platform manylinux_2_$${minor}_$$arch"; done; \
	  dir=$$(mktemp -d); \
	  PIP_CONFIG_FILE=/dev/null $(BIN)/pip --isolated download --quiet --dest "$$dir" \
	    --index-url https://pypi.org/simple --no-deps --only-binary=:all: --require-hashes \
	    --implementation cp --python-version 3.11 $$platforms -r requirements.lock; \
	  echo "requirements.lock: $$(ls "$$dir" | wc -l) wheels for linux/$$arch, every hash matches"; \
	  rm -rf "$$dir"; \
	done

# `make demo PORT=9465` serves the demo's metrics on another port (default 9464)
demo: $(DEMO_STAMP)
	$(BIN)/secretsync demo $(if $(PORT),--port $(PORT))

clean:
	rm -rf $(VENV) $(TOOLS_VENV) $(AWS_VENV) $(PROD_VENV) .mypy_cache .ruff_cache .pytest_cache secretsync-demo java/target java/*/target
	find daemon tests bench packaging examples -name __pycache__ -prune -exec rm -rf {} +
