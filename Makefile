# The two commands of the README. Both set up everything first (scripts/setup.sh: a Python venv
# with torch 2.13.0 + timm, whose libtorch tch links), so they work on a fresh clone.
#
#   make run    the main job
#   make test   the whole test suite, including the tests that need Python torch/timm
SHELL := /bin/bash
CARGO ?= cargo
FEATURES := --features torch
export ZOO_PYTHON ?= $(CURDIR)/.venv/bin/python
# libtorch's OpenMP threads spin while waiting; on a busy 2-core machine that makes a forward
# pass 20x slower (b0 at 224: 2 s instead of 0.1 s). Sleep instead.
export OMP_WAIT_POLICY ?= PASSIVE
# build.rs gives binaries and tests an rpath to libtorch; doctests are linked by rustdoc,
# which build scripts cannot reach.
export RUSTDOCFLAGS += -C link-arg=-Wl,-rpath,$(CURDIR)/.libtorch/torch/lib

.PHONY: all setup run test
all: test

setup:
	@command -v c++ >/dev/null || { echo "need a C++ compiler (Debian: apt-get install g++)" >&2; exit 2; }
	@scripts/setup.sh >/dev/null

run: setup
	$(CARGO) run $(FEATURES) --quiet -- arch b0

test: setup
	$(CARGO) test --workspace $(FEATURES) -- --include-ignored
