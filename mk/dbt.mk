# The dbt models (transform/, issue #21): run by Meltano's dbt-duckdb / dbt-postgres utilities (meltano.yml jobs),
# tested by tests/test_dbt.py (part of `make test`), documented in docs/models.md.
#   make dbt-install        install the two utilities (PyPI only: plugins/utilities/*.lock)
#   make bench-transform    the transform on the ~1M-event day in DuckDB beside the load of the same day
#                           (bench/transform.py; writes bench/out/transform.json). TRANSFORM_ARGS passes options,
#                           e.g. `make bench-transform TRANSFORM_ARGS="--events 20000"` (a quick check).
#   make dbt-compile-others `dbt compile` for Snowflake (on fakesnow) and Redshift (offline); see below
TRANSFORM_ARGS ?=
DBT_OTHERS_VENV ?= .venv-dbt-others

.PHONY: dbt-install bench-transform dbt-compile-others

dbt-install: venv $(MELTANO_VENV)/.installed
	timeout 900 $(MELTANO) install --plugin-type utilities dbt-duckdb dbt-postgres

bench-transform: dbt-install
	timeout 600 $(MELTANO) install --plugin-type extractors tap-fullstory
	timeout 600 $(MELTANO) install --plugin-type loaders target-duckdb
	$(BIN)/python bench/transform.py $(TRANSFORM_ARGS)

# Snowflake: the real dbt-snowflake adapter under fakesnow (a Snowflake stand-in on DuckDB), `dbt compile` against it.
# Redshift: the real adapter with its few introspective calls answered locally (standins/dbt_offline_compile.py),
# then every compiled model parsed as Redshift SQL. BigQuery: not here (its adapter needs Google credentials even to
# compile; docs/models.md). Neither proves the SQL runs on the warehouse.
DBT_OTHERS_REQ := "dbt-core==1.11.16" "dbt-snowflake==1.12.4" "dbt-redshift==1.11.1" "fakesnow==0.12.1"

$(DBT_OTHERS_VENV)/.installed:
	test -x $(DBT_OTHERS_VENV)/bin/python || $(PY) -m venv $(DBT_OTHERS_VENV)
	$(DBT_OTHERS_VENV)/bin/pip install -q --disable-pip-version-check $(DBT_OTHERS_REQ)
	touch $@

dbt-compile-others: $(DBT_OTHERS_VENV)/.installed
	rm -rf .tmp/fakesnow-dbt && mkdir -p .tmp/fakesnow-dbt
	DBT_SEND_ANONYMOUS_USAGE_STATS=false DBT_SNOWFLAKE_PASSWORD=x timeout 600 $(DBT_OTHERS_VENV)/bin/fakesnow \
	  -d .tmp/fakesnow-dbt -m dbt.cli.main compile --project-dir transform \
	  --profiles-dir transform/profiles/snowflake --target-path target-snowflake
	DBT_SEND_ANONYMOUS_USAGE_STATS=false timeout 600 $(DBT_OTHERS_VENV)/bin/python standins/dbt_offline_compile.py \
	  redshift transform transform/profiles/redshift target-redshift
