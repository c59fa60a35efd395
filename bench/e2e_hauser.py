"""hauser, FullStory's own export service, on the same emulated day: the figure users compare with.

The binary is built by the peer's own script (``build.sh`` beside its source archive, default
``../shared/peers/hauser`` next to the checkout, or $HAUSER_DIR) into bench/out/hauser/ (git-ignored)
and reused. Its ``local`` provider downloads the day's export (FORMAT_JSON, which the emulator builds
before the clock starts, as it does the tap's NDJSON export) and writes one CSV; hauser never exits,
so the run is timed from start to the moment its sync file holds the end of the day, then stopped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import typing as t
from pathlib import Path

import requests

from bench.e2e_proc import run_watched, tail
from bench.run import DAY, KEY, NEXT, Exports

ROOT = Path(__file__).resolve().parents[1]
BINARY = ROOT / "bench" / "out" / "hauser" / "hauser"

CONFIG = """\
FsApiToken = "{key}"
ApiURL = "{base}"
Provider = "local"
StorageOnly = true
SaveAsJson = false
ExportDuration = "24h"
ExportDelay = "24h"
StartTime = {start}
Backoff = "5s"
BackoffStepsMax = 3
TmpDir = "{tmp}"
[local]
SaveDir = "{save}"
UseStartTime = true
"""


def source_dir() -> Path:
    return Path(os.environ.get("HAUSER_DIR") or ROOT.parent / "shared" / "peers" / "hauser")


def build() -> tuple[Path | None, str]:
    """(binary, "") or (None, why it cannot be built here)."""
    if BINARY.exists():
        return BINARY, ""
    script = source_dir() / "build.sh"
    if not script.exists():
        return None, f"no hauser build script at {script} (set HAUSER_DIR)"
    BINARY.parent.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run(["bash", str(script), str(BINARY)], capture_output=True, text=True,
                              timeout=900)
    except subprocess.TimeoutExpired:
        return None, "build.sh did not finish in 15 min"
    if proc.returncode != 0 or not BINARY.exists():
        last = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
        return None, f"build.sh failed ({proc.returncode}): {last}"
    return BINARY, ""


def _built_files(day: Exports) -> int:
    """How many FORMAT_JSON exports of the whole day the emulator holds (one if hauser's request
    matched the pre-built one; hauser's later request for the next, empty day does not count)."""
    files = requests.get(f"{day.base}/_emulator/stats", timeout=60).json()["files"]
    return sum(1 for f in files if f["kind"] == "export" and f["format"] == "FORMAT_JSON"
               and f["rows"] == day.rows["segment"])


def run(binary: Path, day: Exports, work: Path, *, timeout: float, max_rss: int) -> dict[str, t.Any]:
    """One timed hauser run over the day; rows counted in its CSV (one header line per file)."""
    from tap_fullstory.fields import requested_fields

    day.warm_segment("FORMAT_JSON", download=False, fields=requested_fields(mobile=False))
    built = _built_files(day)
    home = work / "hauser"
    save, tmp = home / "save", home / "tmp"
    shutil.rmtree(home, ignore_errors=True)  # a round before this one (--repeat) left its files
    save.mkdir(parents=True)
    tmp.mkdir()
    cfg = home / "hauser.toml"
    cfg.write_text(CONFIG.format(key=KEY, base=day.base, start=DAY, tmp=tmp, save=save))
    sync = save / ".sync.hauser"

    def synced() -> bool:
        try:
            return NEXT in sync.read_text()
        except OSError:
            return False

    log = home / "hauser.log"
    res = run_watched([str(binary), "-c", str(cfg)], cwd=home, env=dict(os.environ), log=log,
                      timeout=timeout, max_rss=max_rss, until=synced)
    out: dict[str, t.Any] = {"seconds": res.seconds, "peak_rss": res.peak_rss, "cpu": res.cpu}
    if res.stopped != "done":
        out["error"] = res.stopped or f"hauser exited {res.returncode}: {tail(log, 3)}"
        return out
    rows = 0
    for csv in save.rglob("*.csv"):
        with open(csv, "rb") as f:
            rows += sum(1 for _ in f) - 1
    out["rows"] = rows
    out["emulator_built_during_run"] = _built_files(day) > built
    return out
