"""`make demo`: the local FullStory emulator -> `meltano run tap-fullstory target-duckdb dbt-duckdb:run` -> a summary.

Starts the emulator with a sample organisation (3 UTC days from 2024-01-01, a few hundred events a day), runs
Meltano's `dev` environment against it (both streams: events and individuals, then the dbt models of transform/),
prints a summary read from the models in output/fullstory.duckdb (schema analytics: sessions and users per day, top
pages by time on page, frustration hot spots, most active users, failed requests), and stops the emulator (also
when anything fails or on Ctrl-C).

Run it again: Meltano's state (the bookmark 2024-01-04T00:00:00Z in .meltano/meltano.db) makes the second run
export nothing and add 0 rows, and the incremental models keep every row count. `make demo-clean` starts over.

usage: python scripts/demo.py [--meltano PATH] [--timeout SECONDS]
       python scripts/demo.py --summary-only DB   (print the summary of an existing DuckDB file)
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DB = ROOT / "output" / "fullstory.duckdb"
# The sample organisation; must agree with the `dev` environment in meltano.yml (start_date, end_date, api_key).
START, DAYS, EVENTS_PER_HOUR, SEED, API_KEY = "2024-01-01T00:00:00Z", 3, 12, 7, "test-key"
TABLE = "main.events"  # target-duckdb lower-cases column names: eventstart, eventtype, customvars, ...
PEOPLE = "main.individuals"  # one row per individual (key indvid), upserted by target-duckdb

MODELS = "analytics"  # the dbt models (transform/), built by the job's `dbt-duckdb:run` step
MODEL_TABLES = ("fs_page_views", "fs_sessions", "fs_users", "fs_frustrations", "fs_custom_events", "fs_failed_requests")

# The summary reads the models only: sessions, page views, users and frustration signals are built by dbt.
SUMMARY_SQL = {
    "Sessions and users per UTC day (fs_sessions)": f"""
        select strftime(session_date, '%Y-%m-%d') as day, count(*) as sessions, count(distinct indv_id) as users,
               count(distinct indv_id) filter (where user_app_key <> '') as identified,
               round(median(duration_ms) / 1000, 1) as median_duration_s, round(avg(pages), 1) as pages_per_session,
               sum(rage_clicks) as rage_clicks, sum(dead_clicks) as dead_clicks
        from {MODELS}.fs_sessions group by session_date order by session_date""",
    "Top pages by time on page (fs_page_views)": f"""
        select regexp_replace(page_url, '^https?://[^/]+', '') as page, count(*) as views,
               round(avg(duration_ms) / 1000, 1) as avg_time_s, round(avg(active_ms) / 1000, 1) as avg_active_s,
               round(avg(max_scroll_depth_pct)) as avg_scroll_pct, round(avg(load_event_ms)) as avg_load_ms
        from {MODELS}.fs_page_views group by page order by sum(duration_ms) desc, page limit 5""",
    "Frustration hot spots (fs_frustrations)": f"""
        select regexp_replace(page_url, '^https?://[^/]+', '') as page, count(*) as signals,
               count(*) filter (where kind = 'rage') as rage_bursts, count(*) filter (where kind = 'dead') as dead,
               count(*) filter (where kind = 'error') as error, count(*) filter (where kind = 'suspicious') as suspicious,
               count(distinct session_key) as sessions,
               mode(coalesce(nullif(event_target_text, ''), event_target_selector, '')) as top_target
        from {MODELS}.fs_frustrations group by page order by signals desc, page limit 5""",
    "Most active users (fs_users)": f"""
        select indv_id, coalesce(nullif(uid, ''), '(anonymous)') as uid, sessions, pages,
               round(active_ms / 60000, 1) as active_min, coalesce(user_plan_str, '') as plan,
               strftime(last_seen_at, '%Y-%m-%d %H:%M') as last_seen, fs_num_sessions as fs_sessions_all_time
        from {MODELS}.fs_users order by sessions desc, events desc, indv_id limit 5""",
    "Failed requests (fs_failed_requests)": f"""
        select req_method as method, regexp_replace(req_url, '^https?://[^/]+', '') as url, req_status as status,
               count(*) as requests
        from {MODELS}.fs_failed_requests group by all order by requests desc, url, status limit 5""",
}


def log(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def _connect(db: Path):
    import duckdb

    # read_only: never upgrade or lock the file target-duckdb (duckdb 1.2.2) writes.
    return duckdb.connect(str(db), read_only=True)


def count_rows(db: Path, table: str = TABLE) -> int:
    if not db.exists():
        return 0
    con = _connect(db)
    try:
        schema, name = table.split(".")
        exists = con.execute("select count(*) from information_schema.tables where table_schema = ? "
                             "and table_name = ?", [schema, name]).fetchone()[0]
        return int(con.execute(f"select count(*) from {table}").fetchone()[0]) if exists else 0
    finally:
        con.close()


def model_counts(db: Path) -> dict[str, int]:
    """Rows in each dbt model (0 before the first run)."""
    return {m: count_rows(db, f"{MODELS}.{m}") for m in MODEL_TABLES}


def print_summary(db: Path) -> None:
    con = _connect(db)
    try:
        for title, sql in SUMMARY_SQL.items():
            cur = con.execute(sql)
            cols = [d[0] for d in cur.description]
            rows = [[" ".join(str(v).split()) for v in row] for row in cur.fetchall()]
            widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(cols)]
            print(f"\n{title}:")
            print("  " + "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
            for r in rows:
                print("  " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))
    finally:
        con.close()


def summary_with_fallback(db: Path) -> None:
    """Summarise with this interpreter's duckdb; if it cannot read the file, use target-duckdb's own venv."""
    try:
        print_summary(db)
    except Exception as exc:  # e.g. a storage version this duckdb cannot read
        plugin_py = ROOT / ".meltano/loaders/target-duckdb/venv/bin/python"
        log(f"this interpreter's duckdb could not read {db.name} ({exc}); using {plugin_py}")
        subprocess.run([str(plugin_py), __file__, "--summary-only", str(db)], check=True)


def start_emulator() -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "tap_fullstory.testing.emulator", "--port", "0", "--api-key", API_KEY,
           "--start", START, "--days", str(DAYS), "--events-per-hour", str(EVENTS_PER_HOUR), "--seed", str(SEED),
           "--pending-polls", "0"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        raise SystemExit(f"[demo] the emulator did not start (exit code {proc.wait()})")
    return proc, url


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--meltano", default=str(ROOT / ".venv-meltano/bin/meltano"))
    ap.add_argument("--timeout", type=float, default=300, help="seconds for `meltano run` (default 300)")
    ap.add_argument("--summary-only", metavar="DB", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.summary_only:
        print_summary(Path(args.summary_only))
        return 0

    # SIGTERM (e.g. from a CI timeout) -> SystemExit, so the `finally` below stops the emulator.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    DB.parent.mkdir(parents=True, exist_ok=True)
    before, people_before = count_rows(DB), count_rows(DB, PEOPLE)
    models_before = model_counts(DB)
    emulator = None
    try:
        t0 = time.monotonic()
        emulator, url = start_emulator()
        log(f"emulator up at {url}: sample organisation, {DAYS} days from {START}, ~{EVENTS_PER_HOUR * 24} events/day")
        env = {**os.environ, "MELTANO_ENVIRONMENT": "dev", "TAP_FULLSTORY_API_URL": url,
               "TAP_FULLSTORY_API_KEY": API_KEY, "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
               "MELTANO_CLI_DISABLE_VERSION_CHECK": "true"}
        cmd = [args.meltano, "--environment", "dev", "run", "tap-fullstory", "target-duckdb", "dbt-duckdb:run"]
        log("$ " + " ".join(["meltano", *cmd[1:]]))
        log_path = ROOT / "output" / "demo-meltano.log"
        with open(log_path, "w") as fh:
            try:
                rc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                    timeout=args.timeout).returncode
            except subprocess.TimeoutExpired:
                rc = -1
        if rc != 0:
            tail = log_path.read_text(errors="replace").splitlines()[-30:]
            print("\n".join(tail), file=sys.stderr)
            log(f"meltano run failed (exit {rc}); full log: {log_path.relative_to(ROOT)}")
            return 1
        log(f"meltano run finished in {time.monotonic() - t0:.1f} s (log: {log_path.relative_to(ROOT)})")
    finally:
        stop(emulator)
        if emulator is not None:
            log("emulator stopped")

    after, people = count_rows(DB), count_rows(DB, PEOPLE)
    log(f"{DB.relative_to(ROOT)}: {after} rows in events ({after - before} added by this run"
        + (", none: the state bookmark says everything up to 2024-01-04 is loaded)" if after == before else ")"))
    log(f"{DB.relative_to(ROOT)}: {people} rows in individuals ({people - people_before} added by this run; "
        "one row per individual, updated in place)")
    models_after = model_counts(DB)
    changed = {m: n - models_before.get(m, 0) for m, n in models_after.items() if n != models_before.get(m, 0)}
    log(f"models ({MODELS} schema, built by dbt-duckdb:run): "
        + ", ".join(f"{m} {n}" for m, n in models_after.items())
        + (f"; rows added by this run: {changed}" if changed else "; row counts unchanged by this run"))
    summary_with_fallback(DB)
    print(f"\nExplore: .meltano/loaders/target-duckdb/venv/bin/python -c \"import duckdb; "
          f"print(duckdb.connect('{DB.relative_to(ROOT)}', read_only=True).sql('from analytics.fs_sessions limit 5'))\"")
    print("Models:  docs/models.md (grain, keys, one example query each)")
    print("State:   .venv-meltano/bin/meltano state get dev:tap-fullstory-to-target-duckdb")
    return 0


if __name__ == "__main__":
    sys.exit(main())
