"""Times the FullStory emulator at scale: build+gzip a ~1,000,000-event export, then serve it over loopback.

Runs the emulator CLI in a subprocess so its peak RSS (VmHWM) is measured on its own.
Usage: python bench/emulator_speed.py [--events N]
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time

import requests

from tap_fullstory.fields import requested_fields

AUTH = {"Authorization": "Basic bench"}


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=1_000_000, help="events in the one-day export")
    args = ap.parse_args()
    eph = args.events // 24
    proc = subprocess.Popen([sys.executable, "-m", "tap_fullstory.testing.emulator", "--api-key", "bench",
                             "--days", "1", "--events-per-hour", str(eph), "--users", "1000",
                             "--pending-polls", "0"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        base = proc.stdout.readline().strip()
        body = {"segmentId": "everyone", "type": "TYPE_EVENT", "format": "FORMAT_JSON",
                "timeRange": {"start": "", "end": ""}, "fields": requested_fields(mobile=False)}
        t0 = time.perf_counter()
        op_id = requests.post(f"{base}/segments/v1/exports", json=body, headers=AUTH, timeout=30).json()["operationId"]
        while (op := requests.get(f"{base}/operations/v1/{op_id}", headers=AUTH, timeout=30).json())["state"] == "PENDING":
            time.sleep(0.1)
        build = time.perf_counter() - t0
        assert op["state"] == "COMPLETED", op
        stats = requests.get(f"{base}/_emulator/stats", timeout=30).json()["files"][0]
        loc = requests.get(f"{base}/search/v1/exports/{op['results']['searchExportId']}/results", headers=AUTH,
                           timeout=30).json()["location"]
        t0 = time.perf_counter()
        n = 0
        with requests.get(loc, stream=True, timeout=60) as r:
            for chunk in r.iter_content(1 << 20):
                n += len(chunk)
        serve = time.perf_counter() - t0
        rss = peak_rss_mb(proc.pid)
        print(f"rows: {stats['rows']:,}  gzip file: {stats['bytes'] / 1e6:.1f} MB")
        print(f"generate+gzip (file build, server side): {stats['seconds']:.2f} s = "
              f"{stats['rows'] / stats['seconds']:,.0f} events/s; create->COMPLETED {build:.2f} s")
        print(f"download over loopback: {n / 1e6:.1f} MB in {serve:.2f} s = {n / 1e6 / serve:,.0f} MB/s")
        print(f"emulator peak RSS (VmHWM): {rss:.0f} MB")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
