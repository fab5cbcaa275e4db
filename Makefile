# The two commands of the README: `make demo` and `make test`. Both install what is missing first.
SHELL := /bin/bash
ENV := . scripts/env.sh &&
NP ?= 4

.PHONY: demo test setup build bench

setup:
	@scripts/setup.sh

build: setup
	$(ENV) cargo build --release --workspace --examples --bins

demo: build
	$(ENV) target/$${RANKWISE_MPI:+mpich/}release/rankwise run -n $(NP) hello

test: setup
	$(ENV) cargo test --workspace --no-fail-fast 2>&1

bench: build
	$(ENV) scripts/bench.sh
