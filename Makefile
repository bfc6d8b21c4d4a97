# The README's two commands are `make run` and `make test`; both set up what they need first.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(CURDIR)/node_modules/.bin:$(PATH)

# cdk synth must run offline, with no credentials and no outbound attempt.
export CDK_DISABLE_CLI_TELEMETRY := true
export AWS_REGION ?= us-east-1
export AWS_DEFAULT_REGION ?= $(AWS_REGION)
export AWS_EC2_METADATA_DISABLED := true
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

CDK := npx --no-install cdk --no-notices

.PHONY: help setup run synth test test-fast lint pytest docs diagram graphviz chromium images-check clean

help:
	@echo "make run   - set up, synthesize every environment, then run dev's workflow locally"
	@echo "make test  - set up, then lint, test and check every synthesized template"
	@echo "make test-fast - the fast tier: rules, config, validation, code checks (no synth, no subprocess)"

setup: $(VENV)/.installed node_modules/.installed .venv-checkov/.installed .venv-sdk/.installed chromium

# The run report's browser test (tests/local/test_local_report_browser.py) opens report.html in
# headless Chromium (tests/browser.py: chromium, chromium-browser or google-chrome, as GitHub's
# runners have): Debian's chromium is installed here when none is (as root, with apt-get).
chromium:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	command -v google-chrome >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else \
	    echo "chromium is missing (the report's browser test needs it): apt-get install chromium"; exit 1; \
	  fi; }

$(VENV)/.installed: pyproject.toml containers/common/pyproject.toml containers/requirements-dev.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet -r containers/requirements-dev.txt -e containers/common -e '.[dev]'
	touch $@

# checkov (tests/infra/test_infra_security.py) pins an older boto3: it gets its own venv.
.venv-checkov/.installed: requirements-checkov.txt
	python3 -m venv .venv-checkov
	.venv-checkov/bin/python -m pip install --quiet -r requirements-checkov.txt
	touch $@

# The SageMaker Python SDK (tests/serving/test_serving_sdk.py) pins rich and protobuf below
# mlstack's: it gets its own venv too.
.venv-sdk/.installed: requirements-sdk.txt
	python3 -m venv .venv-sdk
	.venv-sdk/bin/python -m pip install --quiet -r requirements-sdk.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Synthesize every environment, then run dev's workflow here (no AWS, no Docker) from the
# definition just synthesized; each run keeps its artifacts in .work/local/<execution name>/, and
# dev's runs share one local account (.work/local/accounts/dev/: S3, models, endpoints).
run: setup synth
	$(BIN)/mlstack local run --env dev --workdir .work/local --cdk-out cdk.out

# Into a new folder first: a configuration error leaves the last good cdk.out in place.
synth: setup
	rm -rf cdk.out.new
	$(CDK) synth --quiet --output cdk.out.new
	rm -rf cdk.out && mv cdk.out.new cdk.out
	@echo "Templates in cdk.out/ for every environment:"; find cdk.out -name '*.template.json' | sort

test: setup lint pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Two workers, one test file each at a time (a file's module fixtures stay in one process), the
# slowest files first (tests/conftest.py: xdist's own reorder, by test count, is off), and the 20
# slowest tests listed at the end (bench/README.md says what each buys).
pytest: setup
	$(BIN)/pytest -n 2 --dist loadfile --no-loadscope-reorder --durations=20

# The fast tier, under a minute: no synth and no subprocess (tests/fast_tier.py fails a test that
# starts either). Expected values come from the loaded environments and the named rules.
FAST_TESTS := tests/code tests/rules tests/validate_input tests/infra/test_infra_config.py \
	tests/training/test_training_hyperparameters.py

test-fast: $(VENV)/.installed
	$(PY) -m pytest -q -p tests.fast_tier $(FAST_TESTS)

# docs/architecture-<env>.{dot,svg}: the synthesized app as a picture (needs Graphviz's `dot`,
# checked before the synth).
DOT ?= dot
diagram: graphviz synth
	for env in $$(ls cdk.out | sed -n 's/^assembly-//p'); do \
	  $(PY) scripts/architecture_diagram.py cdk.out --stage $$env --dot docs/architecture-$$env.dot; \
	  $(DOT) -Tsvg docs/architecture-$$env.dot -o docs/architecture-$$env.svg; \
	done

# Not part of `make test`: as root, installs buildah/podman/mmdebstrap/runc with apt-get, builds
# both images from their Dockerfiles and runs them as SageMaker does (docs/containers.md).
images-check:
	scripts/images-check

graphviz:
	@command -v $(DOT) >/dev/null || { echo "Graphviz is missing ($(DOT) is not on PATH): apt-get install graphviz (or brew install graphviz), then make diagram"; exit 1; }

# Regenerate the generated documentation (a test fails when it is stale).
docs: setup
	$(PY) -m mlstack.rules
	$(PY) -m mlstack.config
	$(PY) -m mlstack.config_docs
	$(PY) -m mlstack.execution_input_docs

clean:
	rm -rf cdk.out cdk.out.new $(VENV) .venv-checkov .venv-sdk node_modules
