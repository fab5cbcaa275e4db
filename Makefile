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

# On a machine with a GPU: what it has, then the CUDA kernel tests, the runtime and GPU tests
# under mpirun (the #[ignore]d ones), the kernel benchmarks and the heat figures; results into
# kernels/GPU-RESULTS.md (see there for running it through the device tool).
gpu-check: setup
	$(ENV) scripts/gpu-check.sh

# The C, C++ and Fortran API: lib/, include/ (rankwise.h, rankwise.mod), lib/pkgconfig/rankwise.pc.
PREFIX ?= /usr/local
install: setup
	$(ENV) capi/install.sh $(PREFIX)
