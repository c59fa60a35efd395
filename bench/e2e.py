"""`make bench-e2e`: real `meltano run` for each tap/target pairing on one synthetic UTC day (issue #12).

    .venv/bin/python bench/e2e.py [--events N | --events-per-hour 42000] [--seed 11]
                                  [--only duckdb,postgres-parquet,hauser] [--cap bigquery=100000]
                                  [--repeat 3] [--timeout 3600] [--max-rss-gb 12] [--list]

One emulator serves one UTC day (default `--seed 11 --events-per-hour 42000`, 997,137 events); the
day's export is built and downloaded before anything is timed, so every pairing reads the same bytes
from the emulator's cache. Then, for each pairing in PAIRINGS, in a scratch copy of the Meltano project
(meltano.yml + plugins/, the installed plugin venvs of .meltano/ linked in, no state) and a fresh
target database: `meltano --environment dev run <tap> <target>`, timed from start to exit, with the
peak RSS of the whole process tree (Meltano + tap + target), then the rows that landed are counted in
the warehouse. A run that exits non-zero, or loads a row count (or distinct EventId count) other than
the export's, is a FAILURE, never a figure. Beside each warehouse: its own speed on the same bytes
(see e2e_warehouses.py), and hauser on the same day (e2e_hauser.py). A pairing whose plugin, service
or tap mode is missing here is reported as "not available: <reason>". Before any timing the tap and
the plugin venvs are compiled to bytecode (as a pip install and any second run have them) and a new
PostgreSQL server is warmed; `--repeat N` runs every pairing N times in rotated order (e2e_report.py).

Writes bench/out/e2e.json and prints one table. Services (PostgreSQL, the BigQuery stand-ins) are
started only for the pairings selected, and stopped at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import typing as t
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import e2e_hauser, e2e_report  # noqa: E402
from bench.e2e_proc import cpu_seconds, run_watched, tail  # noqa: E402
from bench.e2e_redshift import Redshift  # noqa: E402
from bench.e2e_warehouses import WAREHOUSES, Warehouse, started  # noqa: E402
from bench.run import DAY, KEY, NEXT, Exports  # noqa: E402

WAREHOUSES[Redshift.name] = Redshift
OUT = ROOT / "bench" / "out"
MELTANO = Path(os.environ.get("MELTANO_BIN") or ROOT / ".venv-meltano" / "bin" / "meltano")
INSTALLED = ROOT / ".meltano"


@dataclasses.dataclass(frozen=True)
class Pairing:
    """One row of the table: which plugins, in which mode, with which settings."""

    name: str
    tap: str  # Meltano extractor
    target: str  # Meltano loader
    mode: str
    warehouse: str  # key of e2e_warehouses.WAREHOUSES; "" for hauser
    tap_config: dict[str, t.Any] = dataclasses.field(default_factory=dict)
    target_config: dict[str, t.Any] = dataclasses.field(default_factory=dict)
    #: Largest day this pairing runs on by default (a stand-in that is itself the bottleneck).
    max_events: int | None = None
    note: str = ""
    #: Another build of the tap to run instead of the installed one (path under the project).
    tap_executable: str = ""

    @property
    def keyed(self) -> bool:
        return self.tap_config.get("event_id", True)


#: The tap as it was when issue #20 was filed (mk/e2e.mk builds it from the clone's history).
FILING_VENV = ".venv-bench-filing"
#: target-postgres's own defaults, which meltano.yml overrides (use_copy, validate_records).
_PG_DEFAULTS = {"use_copy": False, "validate_records": True}

PAIRINGS = [
    Pairing("duckdb", "tap-fullstory", "target-duckdb", "RECORD", "duckdb",
            note="target-duckdb as meltano.yml has it (batch_size_rows 100000, validate_records off)"),
    Pairing("duckdb-batch250k", "tap-fullstory", "target-duckdb", "RECORD", "duckdb",
            target_config={"batch_size_rows": 250_000}, note="target-duckdb batch_size_rows 250000"),
    Pairing("duckdb-batch20k", "tap-fullstory", "target-duckdb", "RECORD", "duckdb",
            target_config={"batch_size_rows": 20_000}, note="target-duckdb batch_size_rows 20000"),
    Pairing("duckdb-append", "tap-fullstory", "target-duckdb", "RECORD", "duckdb",
            tap_config={"event_id": False}, target_config={"primary_key_required": False},
            note="no key (tap event_id off, target primary_key_required off): INSERT only, no UPDATE "
                 "pass; a re-exported window would then duplicate rows"),
    # target-postgres as meltano.yml has it (use_copy, validate_records off: docs/misfits.md), and
    # with the target's defaults (INSERT, validate_records on: the figures before issue #20)
    Pairing("postgres", "tap-fullstory", "target-postgres", "RECORD", "postgres"),
    Pairing("postgres-parquet", "tap-fullstory-parquet", "target-postgres", "Parquet batches",
            "postgres"),
    Pairing("postgres-jsonl", "tap-fullstory-jsonl", "target-postgres", "JSONL batches", "postgres",
            note="the job fullstory-to-postgres"),
    Pairing("postgres-defaults", "tap-fullstory", "target-postgres", "RECORD", "postgres",
            target_config=_PG_DEFAULTS, note="target defaults: INSERT, validate_records on"),
    Pairing("postgres-jsonl-defaults", "tap-fullstory-jsonl", "target-postgres", "JSONL batches",
            "postgres", target_config=_PG_DEFAULTS,
            note="target defaults: INSERT, validate_records on"),
    # JSONL day batches as they ran when issue #20 was filed: that day's tap (its JSONL parts had no C
    # path) and target-postgres with that day's settings (its defaults; meltano.yml's add_record_metadata)
    Pairing("postgres-jsonl-filing", "tap-fullstory-jsonl", "target-postgres", "JSONL batches",
            "postgres", target_config=_PG_DEFAULTS, tap_executable=f"{FILING_VENV}/bin/tap-fullstory",
            note="as at issue #20's filing: the tap at commit 3287cb8 (make bench-e2e builds it), "
                 "target defaults"),
    Pairing("snowflake", "tap-fullstory", "target-snowflake", "RECORD", "snowflake"),
    Pairing("snowflake-arrow", "tap-fullstory-arrow", "target-snowflake", "Arrow batches", "snowflake"),
    Pairing("redshift", "tap-fullstory", "target-redshift", "RECORD", "redshift",
            note="the stock target from .venv-redshift into the stand-in (PostgreSQL 15 + moto S3)"),
    Pairing("redshift-jsonl", "tap-fullstory-jsonl", "target-redshift", "JSONL batches", "redshift",
            note="SDK day batches: the target's SDK reads each file into records, then the same CSV/COPY"),
    Pairing("bigquery", "tap-fullstory", "target-bigquery", "RECORD", "bigquery", max_events=100_000,
            note="on a 100k-event day by default (--cap bigquery=N): bqemulator is the bottleneck, "
                 "in CPU (it spends most of the run's CPU seconds) and memory (at 250k events it "
                 "grew past 18 GB)"),
    Pairing("jsonl", "tap-fullstory", "target-jsonl", "RECORD", "jsonl"),
    Pairing("hauser", "", "hauser", "local provider, CSV", "",
            note="hauser 07b5b46a, `local` provider (CSV files, no warehouse load), 24h window"),
]
BY_NAME = {p.name: p for p in PAIRINGS}


# --- the scratch project ----------------------------------------------------------------------


def _plugin(doc: dict[str, t.Any], kind: str, name: str) -> dict[str, t.Any] | None:
    return next((p for p in doc["plugins"].get(kind, []) if p["name"] == name), None)


def scratch_project(p: Pairing, root: Path, executable: str | None = None) -> tuple[Path | None, str]:
    """A copy of the Meltano project for one pairing, or (None, why it is not available).
    executable: what Meltano runs as the loader instead of its installed venv (a stand-in wrapper)."""
    if not MELTANO.exists():
        return None, f"{MELTANO.relative_to(ROOT)} missing (make services-venvs)"
    doc = yaml.safe_load((ROOT / "meltano.yml").read_text())
    tap = _plugin(doc, "extractors", p.tap)
    if tap is None:
        return None, f"meltano.yml has no extractor {p.tap}"
    if p.tap_executable:
        if not (ROOT / p.tap_executable).exists():
            return None, f"{p.tap_executable} missing (make bench-e2e builds it)"
        tap["executable"] = str(ROOT / p.tap_executable)
    base = tap
    while "inherit_from" in base:
        base = _plugin(doc, "extractors", base["inherit_from"]) or {}
    if not (INSTALLED / "extractors" / base.get("name", "?") / "venv").exists():
        return None, f"extractor {base.get('name')} is not installed (meltano install)"
    loader = _plugin(doc, "loaders", p.target)
    if loader is None:
        return None, f"meltano.yml has no loader {p.target}"
    if executable:
        loader["executable"] = executable
    elif not (INSTALLED / "loaders" / p.target / "venv").exists():
        return None, f"loader {p.target} is not installed (meltano install loader {p.target})"
    tap.setdefault("config", {}).update(p.tap_config)
    loader.setdefault("config", {}).update(p.target_config)
    project = root / f"project-{p.name}"
    shutil.rmtree(project, ignore_errors=True)
    (project / ".meltano").mkdir(parents=True)
    (project / "output").mkdir()
    (project / "meltano.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    shutil.copytree(ROOT / "plugins", project / "plugins")
    for kind in ("extractors", "loaders"):
        (project / ".meltano" / kind).symlink_to(INSTALLED / kind, target_is_directory=True)
    return project, ""


def meltano_env(day: Exports, extra: dict[str, str]) -> dict[str, str]:
    """The process environment without the caller's plugin settings, pointed at the day."""
    drop = ("TAP_FULLSTORY", "TARGET_", "MELTANO_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    return {**env, "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
            "MELTANO_CLI_DISABLE_VERSION_CHECK": "true", "NO_COLOR": "1",
            "TAP_FULLSTORY_API_URL": day.base, "TAP_FULLSTORY_API_KEY": KEY,
            "TAP_FULLSTORY_START_DATE": DAY, "TAP_FULLSTORY_END_DATE": NEXT,
            "TAP_FULLSTORY_EXPORT_WINDOW": "24h", **extra}


# --- one pairing ------------------------------------------------------------------------------


def _figures(rows: int, seconds: float, peak_rss: int, cpu: dict[str, float]) -> dict[str, t.Any]:
    """rows/s of wall time, and of CPU time: the machine is shared, CPU seconds vary less with load."""
    cpu_total = sum(cpu.values())
    return {"seconds": round(seconds, 2), "rows_per_s": round(rows / seconds) if seconds else None,
            "peak_rss_mb": round(peak_rss / 2**20, 1), "cpu_seconds_total": round(cpu_total, 1),
            "rows_per_cpu_s": round(rows / cpu_total) if cpu_total else None}


def run_meltano(p: Pairing, wh: Warehouse, day: Exports, work: Path, *, timeout: float,
                max_rss: int) -> tuple[dict[str, t.Any], Path | None]:
    project, why = scratch_project(p, work, wh.loader_executable())
    if project is None:
        return {"status": f"not available: {why}"}, None
    env = meltano_env(day, wh.fresh(p.name, project))
    log = project / "meltano.log"
    servers = {"warehouse server": wh.server_pids(), "fullstory emulator": [day.proc.pid]}
    before = {k: sum(cpu_seconds(p, children=True) for p in pids) for k, pids in servers.items()}
    res = run_watched([str(MELTANO), "--environment", "dev", "run", "--no-install", p.tap, p.target],
                      cwd=project, env=env, log=log, timeout=timeout, max_rss=max_rss,
                      servers=servers["warehouse server"])
    cpu = {**res.cpu, **{k: round(sum(cpu_seconds(p, children=True) for p in pids) - before[k], 1)
                         for k, pids in servers.items() if pids}}
    out: dict[str, t.Any] = {"seconds": round(res.seconds, 2),
                             "peak_rss_mb": round(res.peak_rss / 2**20, 1), "rows_loaded": None,
                             "cpu_seconds": cpu}
    if servers["warehouse server"]:  # summed over its processes: shared memory counts once per process
        out["server_peak_rss_mb"] = round(res.server_peak_rss / 2**20, 1)
    if res.stopped or res.returncode != 0:
        why = res.stopped or f"meltano exited {res.returncode}"
        return {**out, "status": f"FAILURE: {why}", "log_tail": tail(log)}, project
    try:
        rows, distinct = wh.count(p.name, project, p.keyed)
    except Exception as exc:  # nothing landed (no table) is a failure to report, not a crash
        return {**out, "status": f"FAILURE: cannot count rows: {exc}"}, project
    out.update(rows_loaded=rows, distinct_event_ids=distinct)
    status = verdict(rows, distinct, day.rows["segment"])
    if status != "ok":
        return {**out, "status": status}, project
    return {**out, **_figures(rows, res.seconds, res.peak_rss, cpu), "status": "ok"}, project


def verdict(rows: int, distinct: int | None, expected: int) -> str:
    """"ok" only when exactly the export's rows landed, each EventId once (when there is one)."""
    if rows != expected:
        return f"FAILURE: loaded {rows:,} rows of {expected:,}"
    if distinct is not None and distinct != rows:
        return f"FAILURE: {rows:,} rows but {distinct:,} distinct EventId"
    return "ok"


def run_hauser(day: Exports, work: Path, *, timeout: float, max_rss: int) -> dict[str, t.Any]:
    binary, why = e2e_hauser.build()
    if binary is None:
        return {"status": f"not available: {why}"}
    got = e2e_hauser.run(binary, day, work, timeout=timeout, max_rss=max_rss)
    out = {"seconds": round(got["seconds"], 2), "peak_rss_mb": round(got["peak_rss"] / 2**20, 1),
           "rows_loaded": got.get("rows"), "cpu_seconds": got["cpu"]}
    if "error" in got:
        return {**out, "status": f"FAILURE: {got['error']}"}
    out["emulator_built_during_run"] = got["emulator_built_during_run"]
    status = verdict(got["rows"], None, day.rows["segment"])
    if status != "ok":
        return {**out, "status": status}
    return {**out, **_figures(got["rows"], got["seconds"], got["peak_rss"], got["cpu"]), "status": "ok"}


# --- the whole bench --------------------------------------------------------------------------


class Days:
    """One emulator per day size, each export built and downloaded once before any timing."""

    def __init__(self, work: Path, seed: int) -> None:
        self.work, self.seed, self.days = work, seed, {}

    def get(self, events_per_hour: int) -> Exports:
        if events_per_hour not in self.days:
            day = Exports(events_per_hour * 24, self.work, seed=self.seed, users=None,
                          events_per_hour=events_per_hour)
            self.days[events_per_hour] = day
            print(f"emulator {day.base}: building the day's export ({events_per_hour:,} events/hour, "
                  f"seed {self.seed})...", flush=True)
            day.warm_segment()
            # the project selects `individuals` too: its export (the same day) is built now, not
            # inside the first pairing's timing
            day.warm_segment(download=False, row_type="TYPE_INDIVIDUAL")
            print(f"  export ready: {day.rows['segment']:,} rows, {day.segment_gz.stat().st_size / 1e6:.0f} MB "
                  f"gzip, built in {day.build_seconds['segment']:.1f} s (individuals: "
                  f"{day.build_seconds['TYPE_INDIVIDUAL FORMAT_NDJSON']:.1f} s)", flush=True)
        return self.days[events_per_hour]

    def close(self) -> None:
        for day in self.days.values():
            day.close()


def select(only: str, caps: dict[str, int]) -> list[Pairing]:
    names = [n for n in only.split(",") if n] or [p.name for p in PAIRINGS]
    chosen = []
    for n in names:
        matches = [p for p in PAIRINGS if p.name == n or p.name.startswith(n + "-")]
        if not matches:
            raise SystemExit(f"--only: unknown pairing {n!r}; --list shows them")
        chosen += [p for p in matches if p not in chosen]
    return [dataclasses.replace(p, max_events=caps.get(p.name, p.max_events)) for p in chosen]


def compile_bytecode(pairings: list[Pairing]) -> None:
    """Compile the tap and the plugins' venvs before anything is timed. pip compiles at install and
    Python caches what it imports, so a user's runs after the first start from bytecode; Meltano's
    installs (uv) write none and this machine sets PYTHONDONTWRITEBYTECODE, so without this every
    process of every pairing compiles its imports again (about 1 s per tap or target start)."""
    trees = [ROOT / "tap_fullstory", *sorted(INSTALLED.glob("extractors/*/venv/lib")),
             *sorted(INSTALLED.glob("loaders/*/venv/lib"))]  # not utilities/ (dbt): no pairing runs them
    trees += [(ROOT / p.tap_executable).parents[1] / "lib" for p in pairings if p.tap_executable]
    for tree in trees:
        if tree.exists():  # a file that does not compile (a py2 test in a package) is left as it is
            subprocess.run([sys.executable, "-m", "compileall", "-q", "-j0", str(tree)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_all(pairings: list[Pairing], *, events_per_hour: int, seed: int, work: Path,
            timeout: float, max_rss: int, repeat: int = 1) -> dict[str, dict[str, t.Any]]:
    """Each pairing `repeat` times; in round r a warehouse's pairings start from the r-th one, so none
    is always first on its server."""
    rounds: dict[str, list[dict[str, t.Any]]] = {p.name: [] for p in pairings}
    limits: dict[tuple[str, int], dict[str, t.Any]] = {}
    days = Days(work, seed)

    def day_for(p: Pairing) -> Exports:
        eph = events_per_hour
        if p.max_events and p.max_events < events_per_hour * 24:
            eph = max(1, round(p.max_events / 24))
        return days.get(eph)

    def keep(p: Pairing, day: Exports | None, res: dict[str, t.Any], r: int) -> None:
        rounds[p.name].append({**_describe(p, day), **res, "round": r})
        e2e_report.progress(p.name if repeat == 1 else f"{p.name} (round {r + 1})", rounds[p.name][-1])

    def rotated(group: list[Pairing], r: int) -> list[Pairing]:
        return group[r % len(group):] + group[:r % len(group)]

    compile_bytecode(pairings)
    try:
        for kind in [*WAREHOUSES, ""]:
            group = [p for p in pairings if p.warehouse == kind]
            if not group:
                continue
            if kind == "":
                for r in range(repeat):
                    for p in rotated(group, r):
                        day = day_for(p)
                        print(f"- {p.name} ...", flush=True)
                        keep(p, day, run_hauser(day, work, timeout=timeout, max_rss=max_rss), r)
                continue
            why = WAREHOUSES[kind]().unavailable()
            if why:
                for p in group:
                    keep(p, None, {"status": f"not available: {why}"}, 0)
                continue
            with started(kind, work) as wh:
                for r in range(repeat):
                    for p in rotated(group, r):
                        day = day_for(p)
                        print(f"- {p.name}: meltano run {p.tap} {p.target} ...", flush=True)
                        res, project = run_meltano(p, wh, day, work, timeout=timeout, max_rss=max_rss)
                        key = (kind, day.events)
                        if res["status"] == "ok" and key not in limits and project is not None:
                            try:
                                limits[key] = wh.limit(day.segment_gz, p.name, project) or {}
                            except Exception as exc:
                                limits[key] = {"error": str(exc)}
                        keep(p, day, res, r)
                        wh.done(p.name)
                        if project is not None:
                            shutil.rmtree(project, ignore_errors=True)
    finally:
        days.close()
    results = {name: e2e_report.combine(rs) for name, rs in rounds.items() if rs}
    # the warehouse's own speed, measured once per warehouse and day, stands beside each pairing that ran
    for name, r in results.items():
        p = BY_NAME[name]
        if p.warehouse and "seconds" in r:
            lim = limits.get((p.warehouse, r["events_requested"])) or {}
            r["limit"] = {**lim, "note": WAREHOUSES[p.warehouse].limit_note}
    hauser = results.get("hauser", {})
    for r in results.values():
        if r.get("rows_per_s") and hauser.get("rows_per_s"):
            r["ratio_to_hauser"] = round(r["rows_per_s"] / hauser["rows_per_s"], 2)
    return results


def _describe(p: Pairing, day: Exports | None) -> dict[str, t.Any]:
    return {"tap": p.tap, "target": p.target, "mode": p.mode, "warehouse": p.warehouse,
            "settings": {"tap": p.tap_config, "target": p.target_config}, "note": p.note,
            "events_requested": day.events if day else None,
            "rows_expected": day.rows["segment"] if day else None}


def add_day_arguments(ap: argparse.ArgumentParser) -> None:
    """--events / --events-per-hour / --seed: the synthetic day (shared with bench/transform.py)."""
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--events", type=int, help="events in the day (sets --events-per-hour to N/24)")
    size.add_argument("--events-per-hour", type=int, default=42_000,
                      help="emulator events per hour (default 42000: ~1M events a day)")
    ap.add_argument("--seed", type=int, default=11, help="emulator seed (default 11)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_day_arguments(ap)
    ap.add_argument("--only", default="", help="comma-separated pairings (or prefixes: 'postgres'); "
                                               "default all")
    ap.add_argument("--cap", action="append", default=[], metavar="PAIRING=N",
                    help="run this pairing on a smaller day of N events (a slow stand-in)")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per pairing (default 3600)")
    ap.add_argument("--max-rss-gb", type=float, default=12.0,
                    help="stop a pairing whose process tree grows past this (default 12)")
    ap.add_argument("--output", default=str(OUT / "e2e.json"))
    ap.add_argument("--repeat", type=int, default=1, metavar="N",
                    help="run every pairing N times, rotating the order (default 1); the table keeps each "
                         "pairing's round of median time, ratios are medians of same-round ratios")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, projects)")
    ap.add_argument("--list", action="store_true", help="list the pairings and exit")
    args = ap.parse_args(argv)
    if args.list:
        for p in PAIRINGS:
            print(f"{p.name:17s} {p.tap or '-':22s} {p.target:17s} {p.mode:20s} {p.note}")
        return 0
    try:
        caps = {k: int(v) for k, v in (c.split("=", 1) for c in args.cap)}
    except ValueError:
        ap.error("--cap takes PAIRING=N, e.g. --cap bigquery=100000")
    if args.repeat < 1:
        ap.error(f"--repeat: {args.repeat} must be at least 1")
    eph = round(args.events / 24) if args.events else args.events_per_hour
    pairings = select(args.only, caps)
    work = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    began = time.time()
    try:
        results = run_all(pairings, events_per_hour=eph, seed=args.seed, work=work,
                          timeout=args.timeout, max_rss=int(args.max_rss_gb * 2**30), repeat=args.repeat)
    finally:
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    same_run = e2e_report.ratios(results)
    doc = {"events_per_hour": eph, "seed": args.seed, "repeat": args.repeat, "pairings": results,
           "ratios": same_run,
           "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                       "loadavg_at_end": os.getloadavg()},
           "wall_seconds": round(time.time() - began), "when": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                             time.gmtime())}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(doc, indent=2) + "\n")
    print()
    print(e2e_report.table(results, same_run))
    print(f"\nwrote {args.output}")
    return 1 if any(r["status"].startswith("FAILURE") for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
