"""Benchmark: the Parquet day batch for a 1,000,000-event UTC day, against DuckDB on the same export.

    .venv/bin/python bench/batch_day.py [--events 1000000] [--profile]

Steps (emulator on loopback, 6h windows):
1. warm-up: one tap run so the emulator builds and caches the day's export files;
2. the tap in BATCH/Parquet mode end to end (export -> decode -> split -> Parquet day file):
   wall time, rows/s, peak RSS of the tap process;
3. the writer alone (time inside ColumnarDayWriter: Python -> Arrow -> zstd Parquet), in process;
4. DuckDB `COPY (SELECT * FROM read_json([...])) TO '...parquet'` on the very same export files;
5. with --profile, py-spy samples run 2 and the top functions (self time) are printed.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import typing as t
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tap_fullstory.testing import Emulator  # noqa: E402

DAY, NEXT = "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"
# Runs the tap CLI and reports its own peak RSS (kB) on stderr at exit.
RUNNER = (
    "import atexit, resource, sys\n"
    "atexit.register(lambda: sys.stderr.write('PEAK_RSS_KB=%d\\n' % "
    "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))\n"
    "from tap_fullstory.tap import TapFullStory\n"
    "TapFullStory.cli()\n"
)


def tap_config(base_url: str, out: Path | None, fmt: str = "parquet") -> dict[str, t.Any]:
    cfg: dict[str, t.Any] = {
        "api_key": "test-key", "api_url": base_url, "start_date": DAY, "end_date": NEXT,
        "export_window": "6h", "poll_interval": 0.01,
    }
    if out is not None:
        cfg["batch_config"] = {"encoding": {"format": fmt, "compression": "none"},
                               "storage": {"root": out.as_uri(), "prefix": "bench-"}}
    return cfg


def run_tap(cfg: dict[str, t.Any], tmp: Path, profile: Path | None = None) -> tuple[float, int, str]:
    """(seconds, peak RSS kB, stdout) of one tap run."""
    path = tmp / "config.json"
    path.write_text(json.dumps(cfg))
    cmd = [sys.executable, "-c", RUNNER, "--config", str(path)]
    if profile is not None:
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        cmd = [spy, "record", "--format", "raw", "--rate", "200", "--native", "-o", str(profile),
               "--", *cmd]
    began = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - began
    if proc.returncode != 0:
        sys.exit(f"tap failed:\n{proc.stderr[-3000:]}")
    rss = next((int(x.split("=")[1]) for x in proc.stderr.splitlines()
                if x.startswith("PEAK_RSS_KB=")), 0)
    return seconds, rss, proc.stdout


def parquet_rows(stdout: str) -> tuple[int, list[Path]]:
    import pyarrow.parquet as pq

    files = [Path(url.removeprefix("file://")) for line in stdout.splitlines()
             if line.startswith('{"type":"BATCH"') for url in json.loads(line)["manifest"]]
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files), files


def writer_only(emu: Emulator, files: list[Path]) -> tuple[int, float]:
    """Rows and seconds spent inside the Parquet writer, records coming from the real pipeline."""
    import pyarrow.parquet as pq  # noqa: F401

    from tap_fullstory.fields import (
        CUSTOM_VARS,
        EVENT_ID,
        EXPORT_END,
        EXPORT_START,
        Splitter,
        singer_schema,
    )
    from tap_fullstory.keys import EventKeyer
    from tap_fullstory.sources.decode import iter_rows
    from tap_fullstory.writers import columnar, columns, part_files

    class Stub:  # what arrow_schema needs from the stream: schema and catalog mask
        name = "events"
        schema = singer_schema(mobile=False)
        mask: t.ClassVar[dict] = {}

    schema, kinds = columns.arrow_schema(Stub())  # type: ignore[arg-type]
    out = Path(tempfile.mkdtemp(prefix="bench-writer-"))

    class Storage:
        def open(self, name: str, mode: str) -> t.Any:
            return open(out / name, mode)

        def get_url(self, name: str) -> str:
            return (out / name).as_uri()

    spent = 0.0
    writer = columnar.ColumnarDayWriter(
        lambda i: part_files.DayFile(Storage(), f"w-{i}.parquet"),  # type: ignore[arg-type]
        lambda f: part_files.ParquetPart(f, schema), schema, kinds, part_rows=10**9)
    splitter = Splitter(mobile=False)
    for path in files:
        keyer = EventKeyer(whole_window=False)
        batch = []
        for row in iter_rows(str(path)):
            cols, custom = splitter.split(row)
            cols[EVENT_ID] = keyer.key(cols)
            cols[CUSTOM_VARS] = custom
            cols[EXPORT_START], cols[EXPORT_END] = DAY, NEXT
            batch.append(cols)
            if len(batch) == 50_000:
                began = time.perf_counter()
                for rec in batch:
                    writer.add(rec)
                spent += time.perf_counter() - began
                batch = []
        began = time.perf_counter()
        for rec in batch:
            writer.add(rec)
        spent += time.perf_counter() - began
    began = time.perf_counter()
    writer.close()
    spent += time.perf_counter() - began
    shutil.rmtree(out, ignore_errors=True)
    return writer.rows, spent


def duckdb_copy(files: list[Path], out: Path) -> tuple[int, float]:
    import duckdb

    con = duckdb.connect()
    began = time.perf_counter()
    con.execute(f"COPY (SELECT * FROM read_json({[str(f) for f in files]!r})) TO '{out}' "
                "(FORMAT parquet, COMPRESSION zstd)")
    seconds = time.perf_counter() - began
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0]
    return rows, seconds


def top_frames(raw: Path, n: int = 15) -> list[str]:
    """Self-time per function from py-spy's collapsed stacks (idle and native frames kept)."""
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        total += int(count)
        own[frames[-1]] += int(count)
    return [f"{100 * c / total:5.1f}%  {f}" for f, c in own.most_common(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000, help="events in the day")
    ap.add_argument("--profile", action="store_true", help="py-spy the Parquet run")
    args = ap.parse_args()
    base = ROOT / "bench" / "out"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    eph = round(args.events / 24)
    with Emulator("test-key", seed=1, start=DAY, days=1, events_per_hour=eph) as emu:
        began = time.perf_counter()
        run_tap(tap_config(emu.base_url, base / "warm", "jsonl"), tmp)
        print(f"warm-up (emulator builds the export files): {time.perf_counter() - began:.1f} s")
        exports = [e.path for s, e in emu.cache.entries() if s.kind == "export" and not s.corrupt_row]

        seconds, rss, stdout = run_tap(tap_config(emu.base_url, base / "parquet"), tmp)
        rows, _ = parquet_rows(stdout)
        print(f"tap BATCH parquet, end to end: {rows} rows in {seconds:.2f} s = "
              f"{rows / seconds:,.0f} rows/s, peak RSS {rss / 1024:.0f} MB")

        seconds_rec, rss_rec, stdout_rec = run_tap(tap_config(emu.base_url, None), tmp)
        n_rec = stdout_rec.count('{"type":"RECORD"')
        print(f"tap RECORD mode (for reference): {n_rec} rows in {seconds_rec:.2f} s = "
              f"{n_rec / seconds_rec:,.0f} rows/s, peak RSS {rss_rec / 1024:.0f} MB")

        w_rows, w_seconds = writer_only(emu, exports)
        print(f"Parquet writer alone: {w_rows} rows in {w_seconds:.2f} s = "
              f"{w_rows / w_seconds:,.0f} rows/s")

        d_rows, d_seconds = duckdb_copy(exports, base / "duckdb.parquet")
        print(f"DuckDB COPY read_json -> parquet (same {len(exports)} export files): {d_rows} rows "
              f"in {d_seconds:.2f} s = {d_rows / d_seconds:,.0f} rows/s "
              f"({os.cpu_count()} CPUs)")

        if args.profile:
            raw = tmp / "profile.txt"
            run_tap(tap_config(emu.base_url, base / "profiled"), tmp, profile=raw)
            print("py-spy, self time of the Parquet run (all threads):")
            for line in top_frames(raw):
                print("  " + line)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
