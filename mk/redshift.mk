# The Redshift stand-in and the stock target for the tests (tests/test_redshift.py, bench/e2e.py --only redshift).
# .venv-redshift holds TicketSwap target-redshift 0.3.2, installed unchanged from its source archive beside the
# repository (its Hub pip_url is git-only; the dependencies come from PyPI), plus what the stand-in
# (standins/redshift/) needs: pygwire (wire-protocol messages) and psycopg (catalogue look-ups). boto3, which the
# stand-in reads S3 with, is already a dependency of the target.
# Installed by the generic `.venv-%/.installed` rule of mk/services.mk (stamp = requirement list; `pip check`).

REDSHIFT_ARCHIVE ?= ../shared/peers/target-redshift/target-redshift-0.3.2.tar.gz
SVC_REQ_redshift := $(REDSHIFT_ARCHIVE) "pygwire==0.2.0" "psycopg[binary]==3.3.6"

.PHONY: redshift-venv
redshift-venv: .venv-redshift/.installed

test: redshift-venv
bench-e2e: redshift-venv
