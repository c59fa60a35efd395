"""bench/e2e.py (`make bench-e2e`, issue #12) must not rot: its harness, run at a tiny size for one cheap
pairing, lands exactly the export's rows and writes the documented JSON keys. No timing is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.e2e import Pairing, scratch_project, verdict
from tests.test_meltano import installed  # noqa: F401  (session fixture: meltano install)

ROOT = Path(__file__).resolve().parents[1]
KEYS = {"rows_expected", "rows_loaded", "seconds", "rows_per_s", "peak_rss_mb", "mode", "target",
        "limit", "status"}


@pytest.mark.meltano
def test_harness_loads_every_row_tiny_jsonl(tmp_path: Path, installed: Path) -> None:  # noqa: F811
    out = tmp_path / "e2e.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "e2e.py"), "--events", "480",
                           "--only", "jsonl", "--output", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    r = doc["pairings"]["jsonl"]
    assert r.keys() >= KEYS
    assert r["status"] == "ok", r
    assert r["rows_expected"] > 400 and r["rows_loaded"] == r["rows_expected"]
    assert r["distinct_event_ids"] == r["rows_loaded"]
    assert r["target"] == "target-jsonl" and r["mode"] == "RECORD"
    assert r["rows_per_s"] > 0 and r["peak_rss_mb"] > 0
    assert r["limit"]["rows"] == r["rows_expected"] and r["limit"]["rows_per_s"] > 0
    assert "jsonl" in proc.stdout.split("pairing", 1)[1]  # the printed table has the row


def test_missing_plugins_are_reported_not_crashed(tmp_path: Path) -> None:
    missing_loader = Pairing("x", "tap-fullstory", "target-nowhere", "RECORD", "jsonl")
    project, why = scratch_project(missing_loader, tmp_path)
    assert project is None and "target-nowhere" in why
    missing_tap = Pairing("y", "tap-fullstory-nowhere", "target-jsonl", "RECORD", "jsonl")
    project, why = scratch_project(missing_tap, tmp_path)
    assert project is None and "tap-fullstory-nowhere" in why
    missing_build = Pairing("z", "tap-fullstory-jsonl", "target-postgres", "JSONL batches",
                            "postgres", tap_executable=".venv-nowhere/bin/tap-fullstory")
    project, why = scratch_project(missing_build, tmp_path)
    assert project is None and ".venv-nowhere/bin/tap-fullstory missing" in why


def test_verdict_fails_any_row_count_but_the_exact_one() -> None:
    assert verdict(10, 10, 10) == "ok"
    assert verdict(10, None, 10) == "ok"  # no EventId sent: only the count is checked
    assert verdict(9, 9, 10).startswith("FAILURE")
    assert verdict(11, 11, 10).startswith("FAILURE")
    assert verdict(10, 9, 10).startswith("FAILURE")  # a duplicate hides a lost row
