# `make demo` (included by the top-level Makefile): offline, on a fresh clone.
#   1. the tap venv (.venv, target `venv`) and .venv-meltano (meltano==4.4.1, the `.venv-meltano/.installed` rule of
#      mk/services.mk) -- not the heavy service venvs;
#   2. `meltano install` of only what the demo needs: the extractor, target-duckdb and dbt-duckdb (Meltano's own
#      plugin venvs under .meltano/, from the package registry; no Meltano Hub: plugins/*/*.lock);
#   3. scripts/demo.py: starts the emulator, runs `meltano run tap-fullstory target-duckdb dbt-duckdb:run`
#      (environment dev), prints a summary from the dbt models in output/fullstory.duckdb, stops the emulator.
# Running it twice adds no rows (Meltano state) and leaves every model's row count unchanged.
# `make demo-clean` forgets the demo's data and state.
MELTANO_VENV ?= .venv-meltano
MELTANO := $(MELTANO_VENV)/bin/meltano
DEMO_TIMEOUT ?= 300

.PHONY: demo demo-install demo-clean

demo-install: venv $(MELTANO_VENV)/.installed
	@mkdir -p output
	timeout 600 $(MELTANO) install --plugin-type extractors tap-fullstory
	timeout 600 $(MELTANO) install --plugin-type loaders target-duckdb
	timeout 600 $(MELTANO) install --plugin-type utilities dbt-duckdb

demo: demo-install
	$(BIN)/python scripts/demo.py --meltano $(MELTANO) --timeout $(DEMO_TIMEOUT)

demo-clean:
	rm -rf output/fullstory.duckdb output/demo-meltano.log
	-test -x $(MELTANO) && $(MELTANO) state clear --force dev:tap-fullstory-to-target-duckdb
