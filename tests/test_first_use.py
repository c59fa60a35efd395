"""Small things a new user meets first (issue #14, item 4): plain dates in the emulator, one error line."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

from tap_fullstory.testing import Emulator
from tests.tapio import run_tap


def test_emulator_takes_plain_dates() -> None:
    with Emulator(start="2024-01-01", end="2024-01-02", events_per_hour=5) as plain, \
            Emulator(start="2024-01-01T00:00:00Z", end="2024-01-02T00:00:00Z", events_per_hour=5) as rfc:
        assert plain.bundles() == rfc.bundles() == [{"Id": 170406720048, "Start": 1704067200, "Stop": 1704153600}]
        assert plain.expected_rows("2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z") == rfc.expected_rows(
            "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z")
    cmd = [sys.executable, "-m", "tap_fullstory.testing.emulator", "--start", "2024-01-01", "--end", "2024-01-03",
           "--events-per-hour", "5"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip() if proc.stdout else ""
        assert url.startswith("http://"), proc.stderr.read() if proc.stderr else ""
        request = urllib.request.Request(f"{url}/api/v1/export/list?start=0",
                                         headers={"Authorization": "Basic test-key"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            bundles = json.loads(answer.read())["exports"]
        assert [(b["Start"], b["Stop"]) for b in bundles] == [(1704067200, 1704153600), (1704153600, 1704240000)]
    finally:
        proc.terminate()
        proc.wait(10)


def test_wrong_api_key_is_one_error_line(emulator: Emulator) -> None:
    run = run_tap({"api_key": "not-the-key", "api_url": emulator.base_url, "start_date": "2024-01-01",
                   "end_date": "2024-01-01T06:00:00Z", "poll_interval": 0.01})
    assert run.returncode == 1
    errors = [line for line in run.stderr.splitlines() if "ERROR" in line or "Traceback" in line]
    assert len(errors) == 1, run.stderr
    assert "rejected the API key" in errors[0] and "api_key" in errors[0]
    assert "not-the-key" not in run.stderr
