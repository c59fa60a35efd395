# `make bench-e2e` (issue #12): real `meltano run` for each tap/target pairing on one synthetic UTC day, the
# warehouse's own speed beside it, and hauser on the same day (bench/e2e.py; prints a table, writes
# bench/out/e2e.json). Needs `make test`'s environments; installs the Meltano plugins it runs (idempotent, PyPI
# only; target-snowflake runs as standins/target-snowflake-fakesnow from .venv-snowflake). A plugin that does not
# install is reported "not available" by the bench, which goes on without it.
# E2E_ARGS passes options, e.g. `make bench-e2e E2E_ARGS="--events 100000 --only duckdb,postgres,hauser"`.
E2E_ARGS ?=
E2E_LOADERS ?= target-duckdb target-postgres target-jsonl target-bigquery

# FILING_VENV: the tap as it was when issue #20 was filed (commit FILING_COMMIT, from this clone's history),
# for the pairing `postgres-jsonl-filing`: "today's JSONL-batch figure" of that issue, measured in the same run
# as the job. If it cannot be built (a shallow clone), that pairing says "not available" and the rest runs.
FILING_COMMIT ?= 3287cb8
FILING_VENV := .venv-bench-filing
FILING_STAMP := $(FILING_VENV)/.installed-$(FILING_COMMIT)

.PHONY: bench-e2e bench-filing-venv

$(FILING_STAMP):
	rm -rf build/filing-src $(FILING_VENV) && mkdir -p build/filing-src
	git archive $(FILING_COMMIT) | tar -x -C build/filing-src
	$(PY) -m venv $(FILING_VENV)
	cd build/filing-src && ../../$(FILING_VENV)/bin/pip install -q .
	rm -rf build/filing-src
	touch $(FILING_STAMP)

bench-filing-venv:
	@$(MAKE) --no-print-directory $(FILING_STAMP) \
	  || echo "[bench-e2e] the tap at $(FILING_COMMIT) did not build; pairing postgres-jsonl-filing will say so"

bench-e2e: venv services-venvs bench-filing-venv
	timeout 600 $(MELTANO) install --plugin-type extractors tap-fullstory
	@for l in $(E2E_LOADERS); do \
	  timeout 900 $(MELTANO) install --plugin-type loaders $$l >/dev/null 2>&1 \
	    || echo "[bench-e2e] loader $$l did not install; its pairings will say so"; \
	done
	$(BIN)/python bench/e2e.py $(E2E_ARGS)
