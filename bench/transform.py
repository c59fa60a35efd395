"""`make bench-transform`: the dbt models (transform/) on one synthetic UTC day in DuckDB, beside its load (issue #21).

    .venv/bin/python bench/transform.py [--events N | --events-per-hour 42000] [--seed 11] [--threads 2]

The same day and the same load as `make bench-e2e`'s `duckdb` pairing (bench/e2e.py: the emulator's export is
built before anything is timed; `meltano run tap-fullstory target-duckdb` into a fresh file, the rows counted).
Then, in that project, the transform step as the jobs run it, `meltano invoke dbt-duckdb run`:
  - full: the first build of every model over the day (what a first `meltano run ... dbt-duckdb:run` does);
  - incremental: the next run with nothing new (what every later scheduled run costs at least: the lookback
    window is re-modelled).
Each is timed from start to exit with the peak RSS of the process tree, and checked: the page views must account
for every loaded event. Goal (issue #21): the full build takes at most a tenth of the load.
Writes bench/out/transform.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import typing as t
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.e2e import (  # noqa: E402
    BY_NAME,
    INSTALLED,
    MELTANO,
    Days,
    add_day_arguments,
    meltano_env,
    run_meltano,
)
from bench.e2e_proc import run_watched, tail  # noqa: E402
from bench.e2e_warehouses import started  # noqa: E402

OUT = ROOT / "bench" / "out"
GOAL = 0.10  # transform seconds / load seconds


def transform(project: Path, env: dict[str, str], what: str, *, timeout: float) -> dict[str, t.Any]:
    """`meltano invoke dbt-duckdb run` in the loaded project, timed; FAILURE on a non-zero exit."""
    log = project / f"dbt-{what}.log"
    res = run_watched([str(MELTANO), "--environment", "dev", "invoke", "dbt-duckdb", "run"], cwd=project,
                      env=env, log=log, timeout=timeout)
    out: dict[str, t.Any] = {"seconds": round(res.seconds, 2), "peak_rss_mb": round(res.peak_rss / 2**20, 1),
                             "cpu_seconds": res.cpu}
    if res.stopped or res.returncode != 0:
        return {**out, "status": f"FAILURE: {res.stopped or f'exit {res.returncode}'}", "log_tail": tail(log)}
    return {**out, "status": "ok"}


def modelled_events(db: Path) -> int:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        return int(con.execute("select coalesce(sum(events), 0) from analytics.fs_page_views").fetchone()[0])
    finally:
        con.close()


def run(events_per_hour: int, seed: int, work: Path, *, timeout: float, threads: int) -> dict[str, t.Any]:
    if not (INSTALLED / "utilities" / "dbt-duckdb" / "venv").exists():
        return {"status": "not available: dbt-duckdb is not installed (meltano install utility dbt-duckdb)"}
    days = Days(work, seed)
    try:
        day = days.get(events_per_hour)
        with started("duckdb", work) as wh:
            load, project = run_meltano(BY_NAME["duckdb"], wh, day, work, timeout=timeout, max_rss=0)
        result: dict[str, t.Any] = {"rows": day.rows["segment"], "load": load}
        if project is None or load.get("status") != "ok":
            return {**result, "status": f"FAILURE: the load did not succeed ({load.get('status')})"}
        shutil.copytree(ROOT / "transform", project / "transform",
                        ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
        (project / ".meltano" / "utilities").symlink_to(INSTALLED / "utilities", target_is_directory=True)
        db = project / "output" / "e2e.duckdb"  # where the duckdb pairing loads (e2e_warehouses.DuckDB)
        env = {**meltano_env(day, {}), "DBT_DUCKDB_PATH": str(db), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
               "DBT_THREADS": str(threads)}
        for what in ("full", "incremental"):
            result[what] = transform(project, env, what, timeout=timeout)
            if result[what]["status"] != "ok":
                return {**result, "status": f"FAILURE: {what} transform: {result[what]['status']}"}
        got = modelled_events(db)
        if got != day.rows["segment"]:
            return {**result, "status": f"FAILURE: the page views hold {got:,} events of {day.rows['segment']:,}"}
        ratio = result["full"]["seconds"] / load["seconds"]
        return {**result, "ratio_full_to_load": round(ratio, 4), "goal": GOAL,
                "goal_met": ratio <= GOAL, "status": "ok"}
    finally:
        days.close()


def table(r: dict[str, t.Any]) -> str:
    if "load" not in r:
        return r["status"]
    lines = [f"{'step':34s} {'seconds':>9s} {'rows/s':>10s} {'peak RSS MB':>12s}"]
    rows = r["rows"]
    for label, key in (("load: tap-fullstory target-duckdb", "load"), ("transform: dbt-duckdb run (full)", "full"),
                       ("transform: dbt-duckdb run (incr.)", "incremental")):
        step = r.get(key)
        if step and "seconds" in step:
            rate = f"{rows / step['seconds']:,.0f}" if step["seconds"] else "-"
            lines.append(f"{label:34s} {step['seconds']:9.2f} {rate:>10s} {step['peak_rss_mb']:12.1f}")
    if "ratio_full_to_load" in r:
        lines.append(f"full transform / load = {r['ratio_full_to_load']:.3f} (goal <= {GOAL}: "
                     f"{'met' if r['goal_met'] else 'NOT met'}); {rows:,} events")
    lines.append(f"status: {r['status']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_day_arguments(ap)  # the same day as bench-e2e by default
    ap.add_argument("--threads", type=int, default=2, help="dbt threads (default 2)")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per step (default 3600)")
    ap.add_argument("--output", default=str(OUT / "transform.json"))
    args = ap.parse_args(argv)
    eph = round(args.events / 24) if args.events else args.events_per_hour
    work = Path(tempfile.mkdtemp(prefix="bench-transform-"))
    try:
        result = run(eph, args.seed, work, timeout=args.timeout, threads=args.threads)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    doc = {"events_per_hour": eph, "seed": args.seed, "threads": args.threads, **result,
           "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                       "loadavg_at_end": os.getloadavg()},
           "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(doc, indent=2) + "\n")
    print(table(result))
    print(f"wrote {args.output}")
    return 1 if result["status"].startswith("FAILURE") else 0


if __name__ == "__main__":
    sys.exit(main())
