# `make bench` (owned by the performance work): the side-by-side benchmark of issue #8.
# Prints a table and writes bench/out/results.json (P1..P4 + raw figures). BENCH_ARGS passes options
# to bench/run.py, e.g. `make bench BENCH_ARGS="--events 4000000 --no-legacy"`.
LEGACY_VENV := .venv-bench-legacy
LEGACY_STAMP := $(LEGACY_VENV)/.installed
BENCH_ARGS ?= --repeat 2 --memory-curve 4000000

.PHONY: bench bench-legacy-venv

# tap-fullstory 1.0.4 (singer-io, legacy bundles API only) in its own environment.
$(LEGACY_STAMP):
	test -x $(LEGACY_VENV)/bin/python || $(PY) -m venv $(LEGACY_VENV)
	$(LEGACY_VENV)/bin/pip install -q "tap-fullstory==1.0.4"
	touch $(LEGACY_STAMP)

bench-legacy-venv: $(LEGACY_STAMP)

bench: venv $(LEGACY_STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)
