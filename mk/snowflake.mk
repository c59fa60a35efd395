# The Snowflake stand-in for the tests (tests/test_snowflake.py): meltanolabs-target-snowflake + fakesnow in ONE venv,
# because target-snowflake has no host/port setting and runs in-process under fakesnow's patching of the Snowflake
# connector (standins/target-snowflake-fakesnow). fakesnow 0.12.1 imports only with snowflake-connector-python 4.x (5.x
# lacks snowflake.connector.converter); standins/fakesnow_ext.py patches fakesnow internals, so fakesnow is pinned exactly.
# Installed by the generic `.venv-%/.installed` rule of mk/services.mk (stamp = requirement list; `pip check`).

SVC_REQ_snowflake := "meltanolabs-target-snowflake==0.20.4" "fakesnow==0.12.1" "snowflake-connector-python~=4.0"

.PHONY: snowflake-venv
snowflake-venv: .venv-snowflake/.installed

test: snowflake-venv
