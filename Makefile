# tap-fullstory: the README's two commands are `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export MELTANO_SEND_ANONYMOUS_USAGE_STATS := false
export MELTANO_CLI_DISABLE_VERSION_CHECK := true

.PHONY: venv test test-fast lint typecheck demo bench clean about readme docs

$(STAMP): pyproject.toml setup.py $(wildcard tap_fullstory/csrc/*)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev,s3,gcs]"
	touch $(STAMP)

venv: $(STAMP)

# Everything a test needs (emulator, PostgreSQL, S3/GCS/BigQuery stand-ins) is started by the tests
# themselves (session fixtures) and stopped when they finish.
test: venv services-venvs
	$(BIN)/ruff check tap_fullstory tests bench standins
	$(BIN)/mypy tap_fullstory
	$(MAKE) --no-print-directory docs
	$(BIN)/pytest

test-fast: venv
	$(BIN)/pytest -m "not services and not meltano and not slow"

lint: venv
	$(BIN)/ruff check tap_fullstory tests bench standins
	$(BIN)/mypy tap_fullstory

# The docs site in strict mode: a broken link or anchor, or a page left out of the nav, fails.
docs: venv
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

about: venv
	$(BIN)/tap-fullstory --about --format=markdown

clean:
	rm -rf .venv .venv-* .meltano output bench/out

include mk/services.mk

readme: venv
	$(BIN)/python scripts/readme_settings.py
include mk/demo.mk
include mk/bench.mk
include mk/sanitize.mk
include mk/snowflake.mk
include mk/backfill.mk
include mk/e2e.mk
include mk/redshift.mk
include mk/require.mk
include mk/mutate.mk
include mk/dbt.mk
