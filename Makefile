# The two commands of the README: `make demo` and `make test`. Both install what is missing first.
SHELL := /bin/bash
ENV := . scripts/env.sh &&
NP ?= 4

.PHONY: demo test setup build bench gpu-check install

setup:
	@scripts/setup.sh

build: setup
	$(ENV) cargo build --release --workspace --examples --bins

demo: build
	$(ENV) $${CARGO_TARGET_DIR:-target}/release/rankwise run -n $(NP) hello

test: setup
	$(ENV) cargo test --workspace --no-fail-fast 2>&1

bench: build
	scripts/bench.sh

# On a machine with a GPU: the CUDA kernel tests, the device-field and GPU heat tests under
# mpirun, and the kernel benchmarks; results into kernels/GPU-RESULTS.md.
gpu-check: setup
	$(ENV) scripts/gpu-check.sh

# The C, C++ and Fortran API: lib/, include/ (rankwise.h, rankwise.mod), lib/pkgconfig/rankwise.pc.
PREFIX ?= /usr/local
install: setup
	$(ENV) capi/install.sh $(PREFIX)
