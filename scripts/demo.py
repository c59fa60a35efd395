"""`make demo`: the local FullStory emulator -> `meltano run tap-fullstory target-duckdb` -> a short summary.

Starts the emulator with a sample organisation (3 UTC days from 2024-01-01, a few hundred events a day), runs
Meltano's `dev` environment against it (both streams: events and individuals), prints rows per UTC day, users per
day, the top event types, the top individuals and the most common custom vars from output/fullstory.duckdb, and
stops the emulator (also when anything fails or on Ctrl-C).

Run it again: Meltano's state (the bookmark 2024-01-04T00:00:00Z in .meltano/meltano.db) makes the second run
export nothing and add 0 rows. `rm -rf output .meltano/meltano.db` starts over.

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

SUMMARY_SQL = {
    "Rows per UTC day": f"""
        select strftime(eventstart::date, '%Y-%m-%d') as day, count(*) as events,
               count(distinct sessionid) as sessions, count(distinct userid) as users
        from {TABLE} group by 1 order by 1""",
    "Users per UTC day (events joined to individuals)": f"""
        with e as (select *, eventstart::date as d, min(eventstart::date) over (partition by indvid) as first_day
                   from {TABLE})
        select strftime(d, '%Y-%m-%d') as day, count(distinct indvid) as individuals,
               count(distinct indvid) filter (where i.uid <> '') as identified,
               count(distinct indvid) filter (where first_day = d) as new,
               round(count(*) / count(distinct indvid), 1) as events_per_individual
        from e left join {PEOPLE} i using (indvid) group by d order by d""",
    "Top individuals (individuals table)": f"""
        select indvid, coalesce(nullif(uid, ''), '(anonymous)') as uid, numevents, numsessions,
               round(totalsec / 60, 1) as minutes, strftime(lasteventstart, '%Y-%m-%d %H:%M') as last_event,
               coalesce(customvars ->> '$.user_plan_str', '') as plan
        from {PEOPLE} order by numevents desc, indvid limit 5""",
    "Top event types": f"""
        select eventtype, count(*) as events from {TABLE} group by 1 order by 2 desc, 1 limit 5""",
    "Most common custom vars (CustomVars JSON)": f"""
        with kv as (
            select unnest(json_keys(customvars)) as var, customvars from {TABLE}
            where customvars is not null
        ), vals as (
            select var, coalesce(json_extract_string(customvars, '$."' || var || '"'), 'null') as value,
                   count(*) as n
            from kv group by 1, 2
        )
        select var, sum(n)::bigint as events, arg_max(value, n) as most_common_value
        from vals group by var order by events desc, var limit 8""",
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
        exists = con.execute("select count(*) from information_schema.tables where table_schema = 'main' "
                             "and table_name = ?", [table.split(".")[-1]]).fetchone()[0]
        return int(con.execute(f"select count(*) from {table}").fetchone()[0]) if exists else 0
    finally:
        con.close()


def print_summary(db: Path) -> None:
    con = _connect(db)
    try:
        for title, sql in SUMMARY_SQL.items():
            cur = con.execute(sql)
            cols = [d[0] for d in cur.description]
            rows = [[str(v) for v in row] for row in cur.fetchall()]
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
    emulator = None
    try:
        t0 = time.monotonic()
        emulator, url = start_emulator()
        log(f"emulator up at {url}: sample organisation, {DAYS} days from {START}, ~{EVENTS_PER_HOUR * 24} events/day")
        env = {**os.environ, "MELTANO_ENVIRONMENT": "dev", "TAP_FULLSTORY_API_URL": url,
               "TAP_FULLSTORY_API_KEY": API_KEY, "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
               "MELTANO_CLI_DISABLE_VERSION_CHECK": "true"}
        cmd = [args.meltano, "--environment", "dev", "run", "tap-fullstory", "target-duckdb"]
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
    summary_with_fallback(DB)
    print(f"\nExplore: .meltano/loaders/target-duckdb/venv/bin/python -c \"import duckdb; "
          f"print(duckdb.connect('{DB.relative_to(ROOT)}', read_only=True).sql('from events limit 5'))\"")
    print("State:   .venv-meltano/bin/meltano state get dev:tap-fullstory-to-target-duckdb")
    return 0


if __name__ == "__main__":
    sys.exit(main())
