"""bench/e2e.py (`make bench-e2e`, issue #12) must not rot: its harness, run at a tiny size for one cheap
pairing, lands exactly the export's rows in every round and writes the documented JSON keys. No timing
is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.e2e import Pairing, scratch_project, verdict
from bench.e2e_report import combine, ratios
from tests.test_meltano import installed  # noqa: F401  (session fixture: meltano install)

ROOT = Path(__file__).resolve().parents[1]
KEYS = {"rows_expected", "rows_loaded", "seconds", "rows_per_s", "peak_rss_mb", "mode", "target",
        "limit", "status"}


@pytest.mark.meltano
def test_harness_loads_every_row_tiny_jsonl(tmp_path: Path, installed: Path) -> None:  # noqa: F811
    out = tmp_path / "e2e.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "e2e.py"), "--events", "480",
                           "--only", "jsonl", "--repeat", "2", "--output", str(out)],
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
    assert doc["repeat"] == 2 and [x["round"] for x in r["rounds"]] == [0, 1]
    assert all(x["status"] == "ok" and x["seconds"] > 0 for x in r["rounds"])
    assert r["seconds"] in {x["seconds"] for x in r["rounds"]}
    assert "seconds per round" in proc.stdout


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


def _round(r: int, seconds: float, rows_per_s: int, status: str = "ok") -> dict[str, object]:
    return {"round": r, "seconds": seconds, "rows_per_s": rows_per_s, "status": status}


def test_rounds_keep_the_median_round_and_any_failure() -> None:
    kept = combine([_round(0, 30.0, 100), _round(1, 10.0, 300), _round(2, 20.0, 150)])
    assert (kept["round"], kept["seconds"]) == (2, 20.0)
    assert [x["seconds"] for x in kept["rounds"]] == [30.0, 10.0, 20.0]
    failed = combine([_round(0, 10.0, 300), _round(1, 12.0, 250, "FAILURE: loaded 9 rows of 10")])
    assert failed["status"].startswith("FAILURE") and len(failed["rounds"]) == 2


def test_ratios_are_taken_within_each_round() -> None:
    job = combine([_round(0, 10.0, 200), _round(1, 10.0, 170), _round(2, 10.0, 160)])
    anchor = combine([_round(0, 10.0, 100), _round(1, 10.0, 100), _round(2, 10.0, 200)])
    got = ratios({"postgres-jsonl": job, "postgres-jsonl-defaults": anchor})
    assert [(x["anchor"], x["per_round"], x["median"], x["met"]) for x in got] == [
        ("postgres-jsonl-defaults", [2.0, 1.7, 0.8], 1.7, True)]
    anchor_failed = combine([_round(0, 10.0, 100, "FAILURE: meltano exited 1")])
    assert ratios({"postgres-jsonl": job, "postgres-jsonl-defaults": anchor_failed}) == []
