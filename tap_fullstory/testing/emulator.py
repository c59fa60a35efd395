"""A local FullStory export API emulator: a real HTTP server for the segment export and legacy bundle APIs.

It exists so the tap (and its tests) can exercise the whole export flow, faults, retries and resumable downloads
offline, at realistic scale. Run ``python -m tap_fullstory.testing.emulator --help`` for the CLI.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from http.server import ThreadingHTTPServer

from . import faults as _faults
from .handler import Handler
from .server import Server
from .state import State, parse_prepare

__all__ = ["Emulator", "build_parser", "main", "parse_prepare"]


class Emulator(State):
    """FullStory's export APIs on one local base URL, serving a deterministic organisation (or a rows file)."""

    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Emulator:
        """Bind and serve in a background thread; returns self."""
        if self._server is not None:
            return self
        server = Server((self.host, self.port), Handler)
        server.emu = self
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="fullstory-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and delete the temp files."""
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._tmp.cleanup()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tap_fullstory.testing.emulator",
                                description="Local FullStory export API emulator (segment export + legacy bundles). "
                                            "Prints the base URL as the first stdout line, then serves until "
                                            "SIGTERM/SIGINT.")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default loopback only: 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port; 0 = pick a free one (default)")
    p.add_argument("--api-key", default="test-key", help="accepted key for 'Authorization: Basic <key>'")
    p.add_argument("--seed", type=int, default=1, help="synthetic data seed (same options -> identical files)")
    p.add_argument("--start", default="2024-01-01T00:00:00Z",
                   help="organisation start: RFC 3339, or a date (2024-01-01 = its midnight UTC)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--days", type=float, default=3, help="organisation length in days (default 3)")
    g.add_argument("--end", default=None,
                   help="organisation end (exclusive): RFC 3339 or a date, instead of --days")
    p.add_argument("--events-per-hour", type=int, default=60, help="average synthetic events per hour (±10%%)")
    p.add_argument("--users", type=int, default=50, help="synthetic users (devices)")
    p.add_argument("--mobile", action="store_true", help="add the 8 mobile App* fields")
    p.add_argument("--new-fields", action="store_true",
                   help="seen events carry EventDuration/EventSecondaryDuration: fields FullStory "
                        "documents that hauser and the tap's catalogue do not know")
    p.add_argument("--rows-file", default=None, help="serve this JSON array of events instead of synthetic data")
    p.add_argument("--bundle-hours", type=int, default=24, help="legacy bundle length in hours (default 24)")
    p.add_argument("--bundle-content-encoding", action="store_true",
                   help="serve legacy bundles as Content-Encoding: gzip + application/json")
    p.add_argument("--rate-limit-per-minute", type=int, default=0,
                   help="legacy downloads allowed per rolling minute (0 = unlimited; FullStory documents 2)")
    p.add_argument("--rate-limit-window", type=float, default=60.0,
                   help="seconds of the rolling rate-limit window (FullStory: 60; shorter for tests)")
    p.add_argument("--pending-polls", type=int, default=1, help="extra PENDING polls once an export is ready")
    p.add_argument("--prepare-seconds", default="0", metavar="BASE[,PER_MB]",
                   help="keep each export PENDING this long after its creation, estimatePctComplete rising: "
                        "BASE seconds plus PER_MB seconds per MB of the (gzip) file, e.g. 20 or 10,0.5 "
                        "(default 0: ready once built)")
    p.add_argument("--max-preparing", type=int, default=0,
                   help="exports prepared at once; a create beyond it gets 429 + Retry-After (default 0 = no "
                        "limit: FullStory documents none)")
    p.add_argument("--download-ttl", type=float, default=3600.0, help="signed download URL lifetime in seconds")
    p.add_argument("--fault", action="append", default=[], metavar="SPEC",
                   help="endpoint:kind[:key=value...], repeatable, e.g. download:429_json:nth=2:retry_after=1. "
                        f"endpoints: {', '.join(_faults.ENDPOINTS)}; kinds: {', '.join(_faults.KINDS)}")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    faults = [_faults.parse_spec(s) for s in args.fault]
    emu = Emulator(args.api_key, seed=args.seed, start=args.start, days=args.days, end=args.end,
                   events_per_hour=args.events_per_hour, users=args.users, mobile=args.mobile,
                   new_fields=args.new_fields, rows_file=args.rows_file, bundle_hours=args.bundle_hours,
                   bundle_content_encoding=args.bundle_content_encoding,
                   rate_limit_per_minute=args.rate_limit_per_minute, pending_polls=args.pending_polls,
                   host=args.host, port=args.port, download_ttl=args.download_ttl,
                   rate_limit_window=args.rate_limit_window, prepare_seconds=args.prepare_seconds,
                   max_preparing=args.max_preparing)
    for fault in faults:
        emu.book.add(fault)
    # A plain flag: Event.set() is not re-entrant, and two quick signals deadlocked it.
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _frame: stopping.append(signum))
    signal.signal(signal.SIGINT, lambda signum, _frame: stopping.append(signum))
    emu.start()
    print(emu.base_url, flush=True)
    try:
        while not stopping:
            time.sleep(0.2)
    finally:
        emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
