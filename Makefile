# Two commands set up a fresh machine: `make quickstart` and `make test` (README). Both install what is
# missing (scripts/setup.sh: torch==2.11.0 into .venv) and build what is stale.
SHELL := /bin/bash
CARGO ?= cargo
# libtorch oversubscribes 2-core machines badly; tests and the quickstart use one intra-op thread.
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1

.PHONY: setup build release test quickstart fmt lint clean

setup:
	@scripts/setup.sh

build: setup
	$(CARGO) build

release: setup
	$(CARGO) build --release

# The test suite reads our W&B and TensorBoard files with their own readers, and serves token files
# from a local S3-compatible server (moto).
TEST_PYTHON_PACKAGES := wandb==0.31.0 tensorboard==2.21.0 moto[server]==5.2.1

# Benches run once each as checks, in a second step: criterion's own argument parser rejects libtest's
# --test-threads.
test:
	@scripts/setup.sh $(TEST_PYTHON_PACKAGES)
	$(CARGO) test --lib --bins --tests --examples -- --test-threads=2
	$(CARGO) test --bench '*'

quickstart: release
	scripts/quickstart.sh

fmt:
	$(CARGO) fmt --check

lint: setup
	$(CARGO) clippy --all-targets -- -D warnings

clean:
	$(CARGO) clean
