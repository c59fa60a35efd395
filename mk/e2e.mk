# `make bench-e2e` (issue #12): real `meltano run` for each tap/target pairing on one synthetic UTC day, the
# warehouse's own speed beside it, and hauser on the same day (bench/e2e.py; prints a table, writes
# bench/out/e2e.json). Needs `make test`'s environments; installs the Meltano plugins it runs (idempotent, PyPI
# only; target-snowflake runs as standins/target-snowflake-fakesnow from .venv-snowflake). A plugin that does not
# install is reported "not available" by the bench, which goes on without it.
# E2E_ARGS passes options, e.g. `make bench-e2e E2E_ARGS="--events 100000 --only duckdb,postgres,hauser"`.
E2E_ARGS ?=
E2E_LOADERS ?= target-duckdb target-postgres target-jsonl target-bigquery

.PHONY: bench-e2e

bench-e2e: venv services-venvs
	timeout 600 $(MELTANO) install --plugin-type extractors tap-fullstory
	@for l in $(E2E_LOADERS); do \
	  timeout 900 $(MELTANO) install --plugin-type loaders $$l >/dev/null 2>&1 \
	    || echo "[bench-e2e] loader $$l did not install; its pairings will say so"; \
	done
	$(BIN)/python bench/e2e.py $(E2E_ARGS)
