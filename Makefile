# Every target creates .venv when it is missing. torch is installed first and pinned: on these
# machines torch==2.13.0 is a CPU build already on disk; any other spec downloads gigabytes.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install quickstart test test-unit test-integration test-faults bench gpu-check gpu-check-bundle lint format s3 ui-screenshots cluster-dist clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

quickstart: $(STAMP)
	$(BIN)/avspot quickstart --workdir quickstart

# What the README says: lint (ruff check, ruff format --check), then every test.
test: $(STAMP) lint
	$(BIN)/python -m pytest -q

test-unit: $(STAMP)
	$(BIN)/python -m pytest -q -m "not integration"

test-integration: $(STAMP)
	$(BIN)/python -m pytest -q -m integration

# Every fault-injection case, the long ones too (RELIABILITY.md; about 7 minutes)
test-faults: $(STAMP)
	AVSPOT_FAULTS=1 $(BIN)/python -m pytest -q -s tests/faults

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# The GPU path measured on a machine with a CUDA GPU (says so, runs a CPU smoke and exits 0
# without one; GPU_CHECK_ARGS='--expect-gpu' makes that an error). Figures: benchmarks/out/.
GPU_CHECK_ARGS ?=
gpu-check: $(STAMP)
	$(BIN)/python benchmarks/gpu_check.py --out benchmarks/out/gpu_check.json $(GPU_CHECK_ARGS)

# gpu_bundle/: the wheels and script that run the GPU check on a machine with torch, numpy and
# pyarrow only and no package index (README, "GPU check"): bash gpu_bundle/run.sh --expect-gpu
gpu-check-bundle: $(STAMP)
	$(BIN)/python scripts/gpu_bundle.py --out gpu_bundle

# Screenshots of the MLflow UI on the quickstart's store (needs Debian's chromium:
# apt-get install -y chromium). Run `make quickstart` first.
ui-screenshots: $(STAMP)
	$(BIN)/python scripts/ui_screenshots.py --store sqlite:///$(CURDIR)/quickstart/mlflow.db --out docs/img

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# A local S3 (SeaweedFS, loopback only) for trying s3:// URIs by hand; stop it with the printed pid.
s3: $(STAMP)
	$(BIN)/python -m tests.support.s3server --dir .s3 --port 8333

# The wheel, constraints and checksums that cluster.yaml ships to every node (docs/cluster.md).
cluster-dist: $(STAMP)
	scripts/cluster/build_dist.sh

clean:
	rm -rf $(VENV) build dist gpu_bundle *.egg-info .pytest_cache .ruff_cache
