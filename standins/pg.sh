#!/usr/bin/env bash
# usage: pg.sh up|down -- throwaway PostgreSQL on 127.0.0.1:$PGPORT; works as root (CI) or as a normal user.
# 'up' prints the URL of database 'warehouse'. Run 'down' with the same PGPORT and RUN.
# Env: PGPORT (default 54329), RUN (work dir, default <tmp>/tap-fullstory-run; must be traversable by the
# 'postgres' OS user, i.e. not inside a mode-700 directory), PGBIN (default: newest /usr/lib/postgresql/*/bin).
set -euo pipefail
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
  echo "pg.sh: PostgreSQL server binaries not found (apt-get install postgresql; or set PGBIN)" >&2; exit 1
fi
PGPORT=${PGPORT:-54329}
RUN=${RUN:-$(dirname "$(mktemp -u)")/tap-fullstory-run}
PGDATA=$RUN/pgdata-$PGPORT PGSOCK=$RUN/pgsock-$PGPORT
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case "${1:-up}" in
up)
  if [ "$(id -u)" = 0 ] && ! id -u postgres >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin postgres
  fi
  mkdir -p "$RUN"; chmod 755 "$RUN"
  rm -rf "$PGDATA" "$PGSOCK"; mkdir -p "$PGDATA" "$PGSOCK"
  if [ "$(id -u)" = 0 ]; then chown postgres "$PGDATA" "$PGSOCK"; fi
  as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null
  if ! as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -w -t 30 \
    -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $PGSOCK -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >/dev/null; then
    echo "pg.sh: server did not start; log follows" >&2; tail -20 "$PGDATA/server.log" >&2 || true; exit 1
  fi
  psql -X -q "postgresql://postgres@127.0.0.1:$PGPORT/postgres" -c "CREATE DATABASE warehouse"
  echo "postgresql://postgres@127.0.0.1:$PGPORT/warehouse" ;;
down)
  if [ -d "$PGDATA" ]; then as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate -w stop >/dev/null 2>&1 || true; fi
  rm -rf "$PGDATA" "$PGSOCK" ;;
*) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
