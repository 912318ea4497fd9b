# The two commands of the README. Both set up everything first (scripts/setup.sh: a Python venv
# with torch 2.13.0 + timm, whose libtorch tch links), so they work on a fresh clone.
#
#   make run    the main job
#   make test   lint (fmt, clippy) and the whole test suite, with and without libtorch, including
#               the tests that need Python torch/timm
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
	@scripts/setup-native.sh
	@scripts/setup.sh >/dev/null

TINY := tests/fixtures/efficientnet-tiny
# The main job: validate every model of the registry offline (the checkout's registry/, which the
# binary also embeds; schema, input, FLOPs, parameters, accuracy sources,
# file size; checksum/inference are skipped until weights are cached), then convert the bundled
# real TF checkpoint and prove the conversion by running it against TensorFlow's logits.
run: setup
	$(CARGO) build $(FEATURES) --quiet
	$(CARGO) run $(FEATURES) --quiet -- validate --offline
	$(CARGO) run $(FEATURES) --quiet -- convert --from $(TINY)/efficientnet-tiny.tar.gz \
		--arch efficientnet:width=0.05,depth=0.5,classes=10 --out target/tiny-converted \
		--reference-input $(TINY)/input_preprocessed_nchw.npy --reference-logits $(TINY)/logits.npy

# Both builds ship: without libtorch (the default features) and with it. Each is linted and
# tested; the Python-backed tests (ignored by default) run with libtorch.
test: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --workspace --all-targets $(FEATURES) -- -D warnings
	$(CARGO) test --workspace
	$(CARGO) test --workspace $(FEATURES) -- --include-ignored
