"""`make bench-backfill` (issue #16): a multi-day backfill when FullStory takes its time to prepare
each export, for the tap one window at a time, the tap pipelined, and hauser.

    .venv/bin/python bench/backfill.py [--days 7] [--events-per-hour 50000] [--window 6h]
        [--prepare 20 5,0.1] [--pending 1 4] [--no-hauser] [--hauser PATH] [--out FILE]

One emulator (in this process, loopback) serves ``--days`` of synthetic events; each export stays
PENDING for ``--prepare`` seconds after its creation (``BASE[,PER_MB]``: BASE plus PER_MB per MB
of the gzip file), with ``estimatePctComplete`` rising, as FullStory's do. Every window's file is
built before anything is timed (for the tap's request and for hauser's, each read from the
client's first request), so a run only waits for the preparation and downloads. For each
``--prepare`` setting, each of these runs the whole backfill:

  tap, max_pending_exports=N   for each ``--pending`` N (1 = one window after another): RECORD
                               mode, stdout piped into a digest process (sha256 of every RECORD
                               line without its time_extracted, the records' count, the last
                               bookmark); poll_interval 5 s, hauser's fixed poll
  hauser                       ../shared/peers/hauser, built with its build.sh into a temporary
                               directory (or ``--hauser PATH``); local provider, ExportDuration 6h;
                               it never exits: stopped once its .sync.hauser holds the end

Wall time runs from the process's start to its exit (hauser: to the moment .sync.hauser holds the
end). Peak RSS is the process tree's, polled from /proc every 20 ms (as in bench/run.py). Before
each run the emulator is idle (no export being prepared). Writes bench/out/backfill.json and prints
a table; goals: pipelined wall <= 0.35 x sequential and <= 0.35 x hauser, peak RSS within 10 % of
the sequential run, identical records.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import typing as t
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run import _rss, _tree  # noqa: E402
from tap_fullstory.settings import DEFAULT_PENDING_EXPORTS  # noqa: E402

OUT = ROOT / "bench" / "out" / "backfill.json"
HAUSER_DIR = ROOT.parent / "shared" / "peers" / "hauser"
KEY = "bench"
START = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
TIME_EXTRACTED = re.compile(rb',"time_extracted":"[^"]*"')


def iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- measuring a process --------------------------------------------------------------------


class Meter:
    """Polls a process tree's memory (every 20 ms) until stopped: peak VmRSS sum or VmHWM."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            now = [_rss(p) for p in _tree(self.pid)]
            if now:
                self.peak = max(self.peak, sum(r for r, _ in now), max(h for _, h in now))
            self._stop.wait(0.02)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def digest_stdin() -> int:
    """`--digest`: read a tap's stdout; print the records' count, digest and the last bookmark."""
    sha, records, tail, bookmark = hashlib.sha256(), 0, b"", None
    source = sys.stdin.buffer
    while chunk := source.read(4 << 20):
        chunk = tail + chunk
        cut = chunk.rfind(b"\n") + 1
        chunk, tail = chunk[:cut], chunk[cut:]
        if chunk.count(b'{"type":"RECORD"') != chunk.count(b"\n"):  # SCHEMA, STATE: rare lines
            keep = []
            for line in chunk.splitlines(keepends=True):
                if line.startswith(b'{"type":"RECORD"'):
                    keep.append(line)
                elif line.startswith(b'{"type":"STATE"'):
                    value = json.loads(line)["value"]
                    bookmark = value["bookmarks"]["events"].get("replication_key_value")
            chunk = b"".join(keep)
        chunk = TIME_EXTRACTED.sub(b"", chunk)
        records += chunk.count(b"\n")
        sha.update(chunk)
    print(json.dumps({"records": records, "sha256": sha.hexdigest(), "bookmark": bookmark}))
    return 0


# --- the runs -------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        from tap_fullstory.testing import Emulator

        self.args, self.work = args, work
        self.end = START + dt.timedelta(days=args.days)
        self.emu = Emulator(KEY, seed=1, start=iso(START), days=args.days, users=1000,
                            events_per_hour=args.events_per_hour, pending_polls=0).start()
        hours = int(args.window.rstrip("h"))
        self.windows = [(START + dt.timedelta(hours=h), START + dt.timedelta(hours=h + hours))
                        for h in range(0, args.days * 24, hours)]

    def close(self) -> None:
        self.emu.stop()

    def warm(self, fields: tuple[str, ...], fmt: str) -> tuple[int, float]:
        """Build every window's file for this request; (rows, seconds)."""
        from tap_fullstory.testing.files import FileSpec
        from tap_fullstory.testing.values import to_us

        began, rows = time.perf_counter(), 0
        for start, end in self.windows:
            spec = FileSpec("export", to_us(start), to_us(end), fields, fmt, "TYPE_EVENT")
            entry = self.emu.cache.get(spec, background=False)
            if entry.error:
                raise SystemExit(f"emulator could not build {spec}: {entry.error}")
            rows += entry.rows
        return rows, time.perf_counter() - began

    def idle(self) -> None:
        """Wait until no export is being prepared (a run starts with FullStory idle)."""
        while self.emu.stats()["preparing"]:
            time.sleep(0.5)
        self.emu.reset_stats()

    def emulator_figures(self) -> dict[str, t.Any]:
        stats = self.emu.stats()
        return {k: stats[k] for k in ("requests", "max_preparing", "too_many_exports")}

    def tap_command(self, pending: int) -> list[str]:
        config = {"api_key": KEY, "api_url": self.emu.base_url, "start_date": iso(START),
                  "end_date": iso(self.end), "export_window": self.args.window, "poll_interval": 5,
                  "max_pending_exports": pending}
        cfg = self.work / f"tap-{pending}.json"
        cfg.write_text(json.dumps(config))
        return [sys.executable, "-m", "tap_fullstory.tap", "--config", str(cfg)]

    def tap(self, pending: int) -> dict[str, t.Any]:
        command = self.tap_command(pending)
        self.idle()
        with open(self.work / f"tap-{pending}.err", "wb") as err:
            began = time.perf_counter()
            tap = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, cwd=ROOT)
            meter = Meter(tap.pid)
            digest = subprocess.Popen([sys.executable, __file__, "--digest"], stdin=tap.stdout,
                                      stdout=subprocess.PIPE)
            assert tap.stdout is not None
            tap.stdout.close()
            _, status, _ = os.wait4(tap.pid, 0)
            seconds = time.perf_counter() - began
            peak = meter.stop()
            tap.returncode = os.waitstatus_to_exitcode(status)
            out, _ = digest.communicate(timeout=600)
        if tap.returncode != 0:
            tail = (self.work / f"tap-{pending}.err").read_text(errors="replace")[-3000:]
            raise SystemExit(f"tap max_pending_exports={pending} failed ({tap.returncode}):\n{tail}")
        found = json.loads(out)
        if found["bookmark"] != iso(self.end):
            raise SystemExit(f"tap max_pending_exports={pending} ended at {found['bookmark']}")
        return {"name": f"tap, max_pending_exports={pending}", "pending": pending,
                "wall_s": round(seconds, 2), "peak_rss_mb": round(peak / 2**20, 1),
                "rows": found["records"], "sha256": found["sha256"], "emulator": self.emulator_figures()}

    def hauser_config(self, binary: Path, tag: str) -> tuple[list[str], Path, Path]:
        """hauser's command, its SaveDir and its sync file (fresh directories)."""
        save, tmp = self.work / f"hauser-{tag}-out", self.work / f"hauser-{tag}-tmp"
        for d in (save, tmp):
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir()
        toml = self.work / f"hauser-{tag}.toml"
        toml.write_text("\n".join([
            f'FsApiToken = "{KEY}"', f'ApiURL = "{self.emu.base_url}"', 'Provider = "local"',
            "StorageOnly = true", "SaveAsJson = false", f'ExportDuration = "{self.args.window}"',
            'ExportDelay = "24h"', f"StartTime = {iso(START)}", 'Backoff = "5s"', "BackoffStepsMax = 3",
            f'TmpDir = "{tmp}"', "[local]", f'SaveDir = "{save}"', "UseStartTime = true", ""]))
        return [str(binary), "-c", str(toml)], save, save / ".sync.hauser"

    def request_of(self, cmd: list[str], who: str) -> tuple[tuple[str, ...], str]:
        """The fields and format of a client's export requests (read from its first one)."""
        known = set(self.emu._ops)
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.work)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                new = [op for op_id, op in list(self.emu._ops.items()) if op_id not in known]
                if new:
                    return new[0].spec.fields, new[0].spec.fmt
                time.sleep(0.1)
            raise SystemExit(f"{who} made no export request within 60 s")
        finally:
            proc.kill()
            proc.wait()

    def hauser(self, binary: Path, tag: str) -> dict[str, t.Any]:
        cmd, save, sync = self.hauser_config(binary, tag)
        self.idle()
        with open(self.work / f"hauser-{tag}.log", "wb") as log:
            began = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.work)
            meter = Meter(proc.pid)
            try:
                while True:
                    if proc.poll() is not None:
                        raise SystemExit(f"hauser exited ({proc.returncode}); see {log.name}")
                    text = sync.read_text().strip() if sync.exists() else ""
                    if text and dt.datetime.fromisoformat(text.replace("Z", "+00:00")) >= self.end:
                        break
                    time.sleep(0.2)
                seconds = time.perf_counter() - began
            finally:
                peak = meter.stop()
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        rows = 0
        for csv in save.glob("*.csv"):  # one file per window; header line first
            with open(csv, "rb") as f:
                rows += sum(block.count(b"\n") for block in iter(lambda: f.read(8 << 20), b"")) - 1
            csv.unlink()
        return {"name": "hauser", "wall_s": round(seconds, 2), "peak_rss_mb": round(peak / 2**20, 1),
                "rows": rows, "emulator": self.emulator_figures()}


def build_hauser(args: argparse.Namespace, work: Path) -> tuple[Path | None, str]:
    if args.no_hauser:
        return None, "not run (--no-hauser)"
    if args.hauser:
        return Path(args.hauser), "given"
    script = HAUSER_DIR / "build.sh"
    if not script.exists():
        return None, f"not run: {script.relative_to(ROOT.parent)} not found"
    binary = work / "hauser-bin" / "hauser"
    built = subprocess.run(["bash", str(script), str(binary)], capture_output=True, text=True, timeout=1800)
    if built.returncode != 0 or not binary.exists():
        return None, f"not run: build.sh failed: {(built.stderr or built.stdout).strip()[-300:]}"
    return binary, "built with build.sh"


def ratios(runs: list[dict[str, t.Any]], default: int) -> dict[str, t.Any]:
    by = {r.get("pending", "hauser"): r for r in runs}
    seq, pipe, hauser = by.get(1), by.get(default), by.get("hauser")
    out: dict[str, t.Any] = {}
    if seq and pipe:
        out["wall_pipelined_over_sequential"] = round(pipe["wall_s"] / seq["wall_s"], 3)
        out["rss_pipelined_over_sequential"] = round(pipe["peak_rss_mb"] / seq["peak_rss_mb"], 3)
    if pipe and hauser:
        out["wall_pipelined_over_hauser"] = round(pipe["wall_s"] / hauser["wall_s"], 3)
    taps = [r for r in runs if "sha256" in r]
    out["records_identical"] = len({(r["sha256"], r["rows"]) for r in taps}) == 1
    return out


def table(results: list[dict[str, t.Any]], default: int) -> str:
    lines = []
    for setting in results:
        lines.append(f"\nprepare {setting['prepare_seconds']} (BASE[,PER_MB] seconds)")
        lines.append(f"{'run':<32}{'wall s':>10}{'peak RSS MB':>13}{'rows':>12}{'max preparing':>15}")
        for r in setting["runs"]:
            lines.append(f"{r['name']:<32}{r['wall_s']:>10.1f}{r['peak_rss_mb']:>13.1f}{r['rows']:>12,}"
                         f"{r['emulator']['max_preparing']:>15}")
        q = setting["ratios"]
        for key, goal in (("wall_pipelined_over_sequential", "<= 0.35"), ("wall_pipelined_over_hauser", "<= 0.35"),
                          ("rss_pipelined_over_sequential", "<= 1.10")):
            if key in q:
                met = q[key] <= float(goal.split()[-1])
                lines.append(f"  {key} (max_pending_exports={default}): {q[key]}  goal {goal}: "
                             f"{'met' if met else 'NOT met'}")
        lines.append(f"  records identical (sha256 of the RECORD stream): {q['records_identical']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--events-per-hour", type=int, default=50_000)
    p.add_argument("--window", default="6h", help="export window, whole hours (tap and hauser)")
    p.add_argument("--prepare", nargs="+", default=["20", "5,0.1"], help="emulator --prepare-seconds settings")
    p.add_argument("--pending", nargs="+", type=int, default=[1, DEFAULT_PENDING_EXPORTS],
                   help=f"the tap's max_pending_exports values (default 1 and the default, {DEFAULT_PENDING_EXPORTS})")
    p.add_argument("--no-hauser", action="store_true")
    p.add_argument("--hauser", help="a hauser binary (default: build ../shared/peers/hauser with its build.sh)")
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--digest", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.digest:
        return digest_stdin()
    from tap_fullstory.testing.emulator import parse_prepare

    for setting in args.prepare:
        parse_prepare(setting)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tap-fullstory-backfill-") as tmp:
        work = Path(tmp)
        binary, hauser_note = build_hauser(args, work)
        print(f"hauser: {hauser_note}", flush=True)
        bench = Bench(args, work)
        try:
            rows, seconds = bench.warm(*bench.request_of(bench.tap_command(1), "the tap"))
            print(f"built the tap's {len(bench.windows)} exports: {rows:,} events in {seconds:.0f} s", flush=True)
            if binary is not None:
                _, seconds = bench.warm(*bench.request_of(bench.hauser_config(binary, "probe")[0], "hauser"))
                print(f"built hauser's {len(bench.windows)} exports in {seconds:.0f} s", flush=True)
            results = []
            for setting in args.prepare:
                bench.emu.prepare_base, bench.emu.prepare_per_mb = parse_prepare(setting)
                runs = []
                for pending in args.pending:
                    runs.append(bench.tap(pending))
                    print(f"  prepare {setting}: {runs[-1]['name']}: {runs[-1]['wall_s']} s", flush=True)
                if binary is not None:
                    runs.append(bench.hauser(binary, setting.replace(",", "_")))
                    print(f"  prepare {setting}: hauser: {runs[-1]['wall_s']} s", flush=True)
                default = DEFAULT_PENDING_EXPORTS if DEFAULT_PENDING_EXPORTS in args.pending else max(args.pending)
                results.append({"prepare_seconds": setting, "runs": runs, "ratios": ratios(runs, default)})
        finally:
            bench.close()
    doc = {"events": rows, "days": args.days, "events_per_hour": args.events_per_hour, "window": args.window,
           "windows": len(bench.windows), "default_max_pending_exports": DEFAULT_PENDING_EXPORTS,
           "hauser": hauser_note, "cpus": os.cpu_count(), "load_average_at_end": os.getloadavg(),
           "bench_seconds": round(time.perf_counter() - began), "settings": results}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(table(results, default))
    print(f"\nwrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
