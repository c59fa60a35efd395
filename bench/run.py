"""`make bench`: the tap against its anchors, side by side on one export (issue #8).

    .venv/bin/python bench/run.py [--events 1000000] [--repeat 2] [--memory-curve 4000000]
                                  [--only parquet,record_segment,...] [--no-legacy] [--profile]

One emulator (its own process, loopback) serves one UTC day of ``--events`` synthetic events. The
exports are built once and downloaded before anything is timed (the segment export as NDJSON gzip,
the legacy 24 h bundle as a gzip JSON array, the very same rows). Then, each in a fresh process,
interleaved and repeated ``--repeat`` times (medians are reported):

  parquet          the tap in BATCH mode, one Parquet day file on local disk
  record_segment   the tap in RECORD mode through the segment export, stdout to /dev/null
  record_bundles   the tap in RECORD mode through the bundles API, stdout to /dev/null
  duckdb           DuckDB ``COPY (SELECT * FROM read_json('<export .gz>')) TO '...parquet'``
                   (only the COPY is timed; the file is already local)
  legacy           tap-fullstory 1.0.4 (``.venv-bench-legacy``) through the bundles API (run once)
  floor            gzip decompress + orjson per NDJSON line of the export, in a tight loop
                   (zlib-ng and ISA-L; the faster is the floor; only the loop is timed)
  parquet_ref      `parquet` with `c_scanner: false`: the reference path alone, what an install
  record_ref       without a C compiler gets (likewise `record_segment`)

The taps are timed from process start to exit. Peak RSS is the process tree's, polled from /proc
every 20 ms: the largest sum of VmRSS over the tree, or the largest single process's VmHWM
(high-water mark) seen, whichever is larger. Ratios (goals of issue #8):

  P1 = parquet rows/s / duckdb rows/s              (>= 1.0)
  P2 = record_bundles rows/s / legacy rows/s       (>= 5)
  P3 = parquet peak RSS / duckdb peak RSS          (<= 0.5)
       P3_growth = parquet peak RSS at the largest --memory-curve size / at --events (<= 1.10)
  P4 = record_segment rows/s / floor rows/s        (>= 0.5)

Writes bench/out/results.json (the ratios and every raw figure) and prints the table.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import typing as t
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


OUT = ROOT / "bench" / "out"
LEGACY_PY = ROOT / ".venv-bench-legacy" / "bin" / "python"
KEY = "bench"
AUTH = {"Authorization": f"Basic {KEY}"}
DAY, NEXT = "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"
DAY_UNIX = 1704067200
RUNS = ("parquet", "record_segment", "record_bundles", "duckdb", "legacy", "floor",
        "parquet_ref", "record_ref")

# --- child programs ---------------------------------------------------------------------------

TAP = "from tap_fullstory.tap import TapFullStory\nTapFullStory.cli()\n"

LEGACY = """\
import sys
import tap_fullstory
tap_fullstory.BASE_URL = sys.argv.pop(1)
tap_fullstory.main()
"""

DUCKDB = """\
import json, sys, time
import duckdb
src, dst = sys.argv[1], sys.argv[2]
con = duckdb.connect()
began = time.perf_counter()
con.execute(f"COPY (SELECT * FROM read_json('{src}')) TO '{dst}' (FORMAT parquet)")
print(json.dumps({"seconds": time.perf_counter() - began, "threads":
                  con.execute("SELECT current_setting('threads')").fetchone()[0]}))
"""

FLOOR = """\
import json, sys, time
import orjson
variant, path = sys.argv[1], sys.argv[2]
if variant == "isal":
    from isal import igzip as gz
else:
    from zlib_ng import gzip_ng as gz
loads = orjson.loads
began = time.perf_counter()
rows = 0
with gz.open(path, "rb") as body:
    for line in body:
        loads(line)
        rows += 1
print(json.dumps({"seconds": time.perf_counter() - began, "rows": rows}))
"""


# --- process measurement ----------------------------------------------------------------------


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def _rss(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of one process, in bytes; zeros once it is gone."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) * 1024
                elif line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    return rss, hwm


class Result(t.NamedTuple):
    seconds: float
    peak_rss: int  # bytes, process tree
    stdout: str
    stderr: str


def measure(cmd: list[str], *, stdout_to_null: bool = False, cwd: Path = ROOT,
            env: dict[str, str] | None = None) -> Result:
    """Run cmd in a fresh process; wall time from spawn to exit and the tree's peak RSS."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        began = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL if stdout_to_null else out,
                                stderr=err, cwd=cwd, env=env)
        peak = 0
        stop = threading.Event()

        def poll() -> None:
            nonlocal peak
            while not stop.is_set():
                now = [_rss(p) for p in _tree(proc.pid)]
                if now:
                    # the tree's current total, or the largest single high-water mark seen
                    peak = max(peak, sum(r for r, _ in now), max(h for _, h in now))
                stop.wait(0.02)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        # (ru_maxrss is not used: after fork+exec it still counts the harness's own pages)
        _, status, _ = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - began
        stop.set()
        poller.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode != 0:
        sys.exit(f"{cmd[:4]} failed ({proc.returncode}):\n{stderr[-4000:]}")
    return Result(seconds, peak, stdout, stderr)


# --- the emulator and the exports -------------------------------------------------------------


class Exports:
    """An emulator process serving one day of `events`, and local copies of its two files."""

    def __init__(self, events: int, work: Path, *, seed: int = 1, users: int | None = 1000,
                 events_per_hour: int | None = None) -> None:
        self.events = events
        self.work = work
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tap_fullstory.testing.emulator", "--api-key", KEY, "--seed", str(seed),
             "--start", DAY, "--days", "1", "--events-per-hour", str(events_per_hour or round(events / 24)),
             *(["--users", str(users)] if users else []), "--pending-polls", "0", "--bundle-hours", "24"],
            stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert self.proc.stdout is not None
        self.base = self.proc.stdout.readline().strip()
        self.segment_gz = work / f"segment-{events}.ndjson.gz"
        self.bundle_gz = work / f"bundle-{events}.json.gz"
        self.rows: dict[str, int] = {}
        self.build_seconds: dict[str, float] = {}

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def _download(self, url: str, path: Path, headers: dict[str, str] | None = None,
                  params: dict[str, t.Any] | None = None) -> None:
        with requests.get(url, headers=headers, params=params, stream=True, timeout=600) as r, \
                open(path, "wb") as f:
            r.raise_for_status()
            for chunk in r.iter_content(4 << 20):
                f.write(chunk)

    def warm_segment(self, fmt: str = "FORMAT_NDJSON", download: bool = True,
                     fields: list[str] | None = None, row_type: str = "TYPE_EVENT") -> None:
        """Build the export the tap (FORMAT_NDJSON; `export_fields: all`, its default, sends no
        `fields`; TYPE_INDIVIDUAL for its `individuals` stream) or hauser (FORMAT_JSON, its field
        list) asks for, same request body; download it unless told not to."""
        body: dict[str, t.Any] = {"segmentId": "everyone", "type": row_type, "format": fmt,
                                  "segmentTimeRange": {"start": "", "end": ""},
                                  "timeRange": {"start": DAY, "end": NEXT}}
        if fields is not None:
            body["fields"] = fields
        began = time.perf_counter()
        op_id = requests.post(f"{self.base}/segments/v1/exports", json=body, headers=AUTH,
                              timeout=60).json()["operationId"]
        while (op := requests.get(f"{self.base}/operations/v1/{op_id}", headers=AUTH,
                                  timeout=60).json())["state"] == "PENDING":
            time.sleep(0.2)
        assert op["state"] == "COMPLETED", op
        self.build_seconds["segment" if download else f"{row_type} {fmt}"] = (
            time.perf_counter() - began)
        if not download:
            return
        loc = requests.get(f"{self.base}/search/v1/exports/{op['results']['searchExportId']}/results",
                           headers=AUTH, timeout=60).json()["location"]
        self._download(loc, self.segment_gz)
        self.rows["segment"] = self._file_rows("export")

    def warm_bundle(self) -> None:
        began = time.perf_counter()
        found = requests.get(f"{self.base}/api/v1/export/list", params={"start": DAY_UNIX},
                             headers=AUTH, timeout=60).json()["exports"]
        assert len(found) == 1, found  # one 24 h bundle: the same day as the segment export
        self._download(f"{self.base}/api/v1/export/get", self.bundle_gz, AUTH, {"id": found[0]["Id"]})
        self.build_seconds["bundle"] = time.perf_counter() - began
        self.rows["bundle"] = self._file_rows("bundle")

    def _file_rows(self, kind: str) -> int:
        files = requests.get(f"{self.base}/_emulator/stats", timeout=60).json()["files"]
        return next(f["rows"] for f in files if f["kind"] == kind and f["ready"])


# --- the runs ---------------------------------------------------------------------------------


def tap_command() -> list[str]:
    return [sys.executable, "-c", TAP]


def tap_config(ex: Exports, **extra: t.Any) -> dict[str, t.Any]:
    return {"api_key": KEY, "api_url": ex.base, "start_date": DAY, "end_date": NEXT,
            "export_window": "24h", "poll_interval": 0.01, **extra}


def write_json(path: Path, doc: t.Any) -> Path:
    path.write_text(json.dumps(doc))
    return path


def _logged_rows(stderr: str) -> int:
    """Rows the tap reported in its per-window progress lines."""
    total = 0
    for line in stderr.splitlines():
        if "Window " in line and " rows, " in line:
            total += int(line.split(" rows, ")[0].rsplit(" ", 1)[1])
    return total


def run_parquet(ex: Exports, work: Path, profile: Path | None = None,
                **extra: t.Any) -> dict[str, t.Any]:
    import pyarrow.parquet as pq

    dest = work / "parquet"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir()
    cfg = write_json(work / "parquet.json", tap_config(ex, batch_config={
        "encoding": {"format": "parquet"}, "storage": {"root": dest.as_uri()}}, **extra))
    res = measure(_maybe_spy([*tap_command(), "--config", str(cfg)], profile))
    files = [Path(u.removeprefix("file://")) for line in res.stdout.splitlines()
             if line.startswith('{"type":"BATCH"') for u in json.loads(line)["manifest"]]
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    size = sum(f.stat().st_size for f in files)
    shutil.rmtree(dest, ignore_errors=True)
    return _figures(rows, res.seconds, res.peak_rss, files=len(files), parquet_bytes=size)


def run_record(ex: Exports, work: Path, api: str, profile: Path | None = None,
               **extra: t.Any) -> dict[str, t.Any]:
    if api == "bundles":
        extra["export_api"] = "bundles"
    cfg = write_json(work / f"record-{api}.json", tap_config(ex, **extra))
    res = measure(_maybe_spy([*tap_command(), "--config", str(cfg)], profile), stdout_to_null=True)
    return _figures(_logged_rows(res.stderr), res.seconds, res.peak_rss)


def run_duckdb(ex: Exports, work: Path) -> dict[str, t.Any]:
    import pyarrow.parquet as pq

    dst = work / "duckdb.parquet"
    res = measure([sys.executable, "-c", DUCKDB, str(ex.segment_gz), str(dst)])
    doc = json.loads(res.stdout.strip().splitlines()[-1])
    rows = pq.ParquetFile(dst).metadata.num_rows
    size = dst.stat().st_size
    dst.unlink()
    return _figures(rows, doc["seconds"], res.peak_rss, process_seconds=round(res.seconds, 3),
                    threads=doc["threads"], parquet_bytes=size)


def run_legacy(ex: Exports, work: Path) -> dict[str, t.Any]:
    cfg = write_json(work / "legacy.json", {"api_key": KEY, "start_date": DAY})
    state = write_json(work / "legacy-state.json", {})
    # -P and a neutral cwd: the project's own `tap_fullstory` package must not shadow 1.0.4.
    res = measure([str(LEGACY_PY), "-P", "-c", LEGACY, f"{ex.base}/api/v1/export/",
                   "--config", str(cfg), "--state", str(state)], stdout_to_null=True, cwd=work)
    rows = 0
    for line in res.stderr.splitlines():
        if '"metric": "record_count"' in line:
            rows += json.loads(line.split("METRIC: ", 1)[1])["value"]
    return _figures(rows, res.seconds, res.peak_rss)


def run_floor(ex: Exports, work: Path) -> dict[str, t.Any]:
    variants = {}
    for variant in ("zlib-ng", "isal"):
        res = measure([sys.executable, "-c", FLOOR, variant, str(ex.segment_gz)])
        doc = json.loads(res.stdout.strip().splitlines()[-1])
        variants[variant] = _figures(doc["rows"], doc["seconds"], res.peak_rss)
    best = max(variants, key=lambda v: variants[v]["rows_per_s"])
    return {**variants[best], "variant": best, "variants": variants}


def _figures(rows: int, seconds: float, peak_rss: int, **extra: t.Any) -> dict[str, t.Any]:
    return {"rows": rows, "seconds": round(seconds, 3),
            "rows_per_s": round(rows / seconds) if seconds > 0 else 0,
            "peak_rss_mb": round(peak_rss / 2**20, 1), **extra}


def _maybe_spy(cmd: list[str], profile: Path | None) -> list[str]:
    if profile is None:
        return cmd
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return [spy, "record", "--format", "raw", "--rate", "250", "--threads", "--native", "--subprocesses",
            "-o", str(profile), "--", *cmd]


def top_frames(raw: Path, n: int = 15) -> dict[str, list[str]]:
    """Self and inclusive time per function from py-spy's collapsed stacks (all threads)."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = [f for f in stack.split(";") if not f.startswith("thread (")]
        if not frames:
            continue
        c = int(count)
        total += c
        own[frames[-1]] += c
        for f in set(frames):
            incl[f] += c

    def fmt(counter: collections.Counter[str], keep: t.Callable[[str], bool]) -> list[str]:
        return [f"{100 * c / total:5.1f}%  {f}" for f, c in counter.most_common() if keep(f)][:n]

    return {"self": fmt(own, lambda f: True),
            "inclusive": fmt(incl, lambda f: "tap_fullstory" in f or "singer_sdk" in f)}


# --- the table --------------------------------------------------------------------------------


def median_of(samples: list[dict[str, t.Any]]) -> dict[str, t.Any]:
    if len(samples) == 1:
        return {**samples[0], "samples": 1}
    out = dict(samples[0])
    for key in ("seconds", "rows_per_s", "peak_rss_mb"):
        out[key] = round(statistics.median(s[key] for s in samples), 3 if key == "seconds" else 1)
    out["rows_per_s_samples"] = [s["rows_per_s"] for s in samples]
    out["peak_rss_mb_samples"] = [s["peak_rss_mb"] for s in samples]
    out["samples"] = len(samples)
    return out


LABELS = {
    "parquet": "tap, Parquet day batch (segment export)",
    "record_segment": "tap, RECORD mode, segment export",
    "record_bundles": "tap, RECORD mode, bundles API",
    "duckdb": "DuckDB COPY read_json -> Parquet",
    "legacy": "tap-fullstory 1.0.4, bundles API",
    "floor": "floor: gunzip + orjson per line",
    "parquet_ref": "tap, Parquet, reference path (no C)",
    "record_ref": "tap, RECORD segment, reference path (no C)",
}


def table(runs: dict[str, dict[str, t.Any]], ratios: dict[str, t.Any]) -> str:
    lines = [f"{'run':42s} {'rows':>10s} {'seconds':>8s} {'rows/s':>10s} {'peak RSS MB':>12s}",
             "-" * 86]
    for name in RUNS:
        r = runs.get(name)
        if r is None:
            continue
        lines.append(f"{LABELS[name]:42s} {r['rows']:>10,d} {r['seconds']:>8.2f} "
                     f"{r['rows_per_s']:>10,.0f} {r['peak_rss_mb']:>12,.0f}")
    lines.append("-" * 86)
    for key, (goal, text) in GOALS.items():
        value = ratios.get(key)
        if value is None:
            continue
        ok = value >= goal if key in ("P1", "P2", "P4") else value <= goal
        lines.append(f"{key:10s} {text:56s} {value:7.2f}  goal {'>=' if key in ('P1', 'P2', 'P4') else '<='} "
                     f"{goal:<4g} {'met' if ok else 'NOT MET'}")
    return "\n".join(lines)


GOALS = {
    "P1": (1.0, "Parquet rows/s / DuckDB rows/s"),
    "P2": (5.0, "RECORD over bundles rows/s / tap-fullstory 1.0.4"),
    "P3": (0.5, "Parquet peak RSS / DuckDB peak RSS"),
    "P3_growth": (1.10, "Parquet peak RSS at the largest curve size / base"),
    "P4": (0.5, "RECORD (segment export) rows/s / floor"),
}


def compute_ratios(runs: dict[str, dict[str, t.Any]], curve: list[dict[str, t.Any]]) -> dict[str, t.Any]:
    def ratio(a: str, b: str, key: str = "rows_per_s") -> float | None:
        if a in runs and b in runs and runs[b][key]:
            return round(runs[a][key] / runs[b][key], 3)
        return None

    out: dict[str, t.Any] = {"P1": ratio("parquet", "duckdb"), "P2": ratio("record_bundles", "legacy"),
                             "P3": ratio("parquet", "duckdb", "peak_rss_mb"),
                             "P4": ratio("record_segment", "floor")}
    if curve and "parquet" in runs:
        out["P3_growth"] = round(curve[-1]["peak_rss_mb"] / runs["parquet"]["peak_rss_mb"], 3)
    return out


# --- main -------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000, help="events in the one-day export")
    ap.add_argument("--repeat", type=int, default=2, help="rounds of the side-by-side runs (medians)")
    ap.add_argument("--legacy-repeat", type=int, default=1, help="rounds for tap-fullstory 1.0.4 (slow)")
    ap.add_argument("--only", default=",".join(RUNS), help=f"comma-separated subset of {', '.join(RUNS)}")
    ap.add_argument("--no-legacy", action="store_true", help="skip tap-fullstory 1.0.4")
    ap.add_argument("--memory-curve", default="", metavar="N[,N...]",
                    help="also run the Parquet mode at these event counts (peak RSS curve), "
                         "e.g. 2000000,4000000")
    ap.add_argument("--profile", action="store_true",
                    help="py-spy the RECORD (segment) and Parquet runs once more, untimed")
    ap.add_argument("--output", default=str(OUT / "results.json"))
    args = ap.parse_args()
    only = [r for r in args.only.split(",") if r]
    unknown = set(only) - set(RUNS)
    if unknown:
        ap.error(f"unknown runs: {', '.join(sorted(unknown))}")
    if args.no_legacy and "legacy" in only:
        only.remove("legacy")
    if "legacy" in only and not LEGACY_PY.exists():
        ap.error(f"{LEGACY_PY} is missing: `make bench` creates it (pip install tap-fullstory==1.0.4)")
    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-run-"))
    samples: dict[str, list[dict[str, t.Any]]] = {name: [] for name in only}
    curve: list[dict[str, t.Any]] = []
    profiles: dict[str, t.Any] = {}
    ex = Exports(args.events, work)
    try:
        print(f"emulator {ex.base}: building and downloading the {args.events:,}-event exports...",
              flush=True)
        ex.warm_segment()
        if {"record_bundles", "legacy"} & set(only):
            ex.warm_bundle()
        print(f"  exports ready: {ex.rows} rows; segment {ex.segment_gz.stat().st_size / 1e6:.0f} MB gzip"
              f" (built in {ex.build_seconds})", flush=True)
        jobs: dict[str, t.Callable[[], dict[str, t.Any]]] = {
            "parquet": lambda: run_parquet(ex, work),
            "record_segment": lambda: run_record(ex, work, "segment"),
            "record_bundles": lambda: run_record(ex, work, "bundles"),
            "duckdb": lambda: run_duckdb(ex, work),
            "legacy": lambda: run_legacy(ex, work),
            "floor": lambda: run_floor(ex, work),
            "parquet_ref": lambda: run_parquet(ex, work, c_scanner=False),
            "record_ref": lambda: run_record(ex, work, "segment", c_scanner=False),
        }
        for round_ in range(args.repeat):
            for name in only:
                if name == "legacy" and round_ >= args.legacy_repeat:
                    continue
                fig = jobs[name]()
                samples[name].append(fig)
                print(f"  round {round_ + 1} {name:15s} {fig['rows']:>10,d} rows {fig['seconds']:7.2f} s "
                      f"{fig['rows_per_s']:>9,} rows/s  peak RSS {fig['peak_rss_mb']:7.1f} MB", flush=True)
        if args.profile:
            for name, job in (("record_segment", lambda p: run_record(ex, work, "segment", p)),
                              ("parquet", lambda p: run_parquet(ex, work, p))):
                raw = OUT / f"profile-{name}.txt"
                job(raw)
                profiles[name] = top_frames(raw)
                print(f"py-spy, {name} (all threads; self time, then inclusive tap/SDK functions):")
                for line in profiles[name]["self"]:
                    print("  " + line)
                print("  --")
                for line in profiles[name]["inclusive"]:
                    print("  " + line)
    finally:
        ex.close()
    for size in [int(x) for x in args.memory_curve.split(",") if x]:
        big = Exports(size, work)
        try:
            print(f"memory curve: {size:,} events (emulator {big.base})...", flush=True)
            big.warm_segment()
            big.segment_gz.unlink()  # only the tap reads this export
            fig = run_parquet(big, work)
            fig["events_requested"] = size
            curve.append(fig)
            print(f"  parquet {fig['rows']:>10,d} rows {fig['seconds']:7.2f} s {fig['rows_per_s']:>9,} rows/s"
                  f"  peak RSS {fig['peak_rss_mb']:7.1f} MB", flush=True)
        finally:
            big.close()
    shutil.rmtree(work, ignore_errors=True)

    runs = {name: median_of(s) for name, s in samples.items() if s}
    ratios = compute_ratios(runs, curve)
    goals = {key: {"value": ratios[key], "goal": GOALS[key][0],
                   "met": (ratios[key] >= GOALS[key][0]) if key in ("P1", "P2", "P4")
                   else (ratios[key] <= GOALS[key][0])}
             for key in GOALS if ratios.get(key) is not None}
    doc = {**ratios, "goals": goals, "events_requested": args.events, "export_rows": ex.rows,
           "runs": runs, "memory_curve": curve, "profiles": profiles,
           "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                       "loadavg_at_end": os.getloadavg()},
           "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(doc, indent=2) + "\n")
    print()
    print(table(runs, ratios))
    if curve:
        base = runs.get("parquet")
        points = ([f"{args.events:,}: {base['peak_rss_mb']:.0f} MB"] if base else []) + \
            [f"{c['events_requested']:,}: {c['peak_rss_mb']:.0f} MB" for c in curve]
        print("Parquet peak RSS by export size: " + ", ".join(points))
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
