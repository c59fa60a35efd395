"""A local FullStory export API emulator: a real HTTP server for the segment export and legacy bundle APIs.

It exists so the tap (and its tests) can exercise the whole export flow, faults, retries and resumable downloads
offline, at realistic scale. Run ``python -m tap_fullstory.testing.emulator --help`` for the CLI.
"""

from __future__ import annotations

import argparse
import collections
import math
import re
import signal
import sys
import tempfile
import threading
import time
import typing as t
from http.server import ThreadingHTTPServer
from pathlib import Path

from . import faults as _faults
from .data import RowsFileSource, Source, SyntheticSource, to_us
from .files import FileCache
from .handler import _Handler, _Operation
from .individuals import individual_rows


class Emulator:
    """FullStory's export APIs on one local base URL, serving a deterministic organisation (or a rows file)."""

    def __init__(self, api_key: str = "test-key", *, seed: int = 1, start: t.Any = "2024-01-01T00:00:00Z",
                 days: float = 3, end: t.Any = None, events_per_hour: int = 60, users: int = 50,
                 mobile: bool = False, new_fields: bool = False, rows_file: str | Path | None = None,
                 bundle_hours: int = 24,
                 bundle_content_encoding: bool = False, rate_limit_per_minute: int = 0, pending_polls: int = 1,
                 host: str = "127.0.0.1", port: int = 0, download_ttl: float = 3600.0,
                 rate_limit_window: float = 60.0, prepare_seconds: t.Any = 0,
                 max_preparing: int = 0) -> None:
        self.api_key, self.host, self.port = api_key, host, port
        #: How long FullStory takes to prepare an export: BASE seconds + PER_MB per MB of the file.
        self.prepare_base, self.prepare_per_mb = parse_prepare(prepare_seconds)
        #: Exports that may be prepared at once (0 = no limit; FullStory documents none).
        self.max_preparing = int(max_preparing)
        self.bundle_hours, self.bundle_content_encoding = int(bundle_hours), bundle_content_encoding
        self.rate_limit_per_minute, self.pending_polls = int(rate_limit_per_minute), int(pending_polls)
        self.download_ttl = float(download_ttl)
        #: The rolling window of the legacy download limit (FullStory: 60 s; shorter in tests).
        self.rate_limit_window = float(rate_limit_window)
        if self.bundle_hours < 1:
            raise ValueError("bundle_hours must be >= 1")
        if rows_file:
            self.source: Source = RowsFileSource(rows_file)
        else:
            start_us = to_us(_plain_date(start))
            end_us = to_us(_plain_date(end)) if end not in (None, "") else None
            if start_us is None:
                raise ValueError("start is required")
            if end_us is None:
                end_us = start_us + int(days * 86_400_000_000)
            self.source = SyntheticSource(seed=seed, start_s=start_us // 1_000_000, end_s=-(-end_us // 1_000_000),
                                          events_per_hour=events_per_hour, users=users, mobile=mobile,
                                          new_fields=new_fields)
        self._tmp = tempfile.TemporaryDirectory(prefix="fullstory-emulator-", ignore_cleanup_errors=True)
        self.cache = FileCache(self.source, Path(self._tmp.name))
        self.book = _faults.FaultBook()
        self._lock = threading.Lock()
        self._ops: dict[str, _Operation] = {}
        self._by_export: dict[str, _Operation] = {}
        self._tokens: dict[str, tuple[_Operation, float]] = {}
        self._downloads: collections.deque[float] = collections.deque()
        #: Raw bodies of every export create request, in order (tests compare them byte for byte).
        self.create_bodies: list[bytes] = []
        self._bytes_served = 0
        self._rate_limited = 0
        self._preparing_max = 0
        self._too_many_exports = 0
        self._failing: dict[int | None, str] = {}
        self._bundles = self._make_bundles()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Emulator:
        """Bind and serve in a background thread; returns self."""
        if self._server is not None:
            return self
        server = _Server((self.host, self.port), _Handler)
        server.emu = self
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="fullstory-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and delete the temp files."""
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

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    # ------------------------------------------------------------------ test helpers
    def add_fault(self, endpoint: str, kind: str, nth: int = 1, times: int = 1, **params: t.Any) -> None:
        """The nth..nth+times-1 requests to endpoint (counted since start/reset) get this fault."""
        self.book.add(_faults.Fault(endpoint, kind, nth, times, params))

    def fail_exports(self, start: t.Any, message: str | None = "export failed: internal error (injected)") -> None:
        """Every export of the window starting at `start` (made or to be made) ends FAILED with `message`
        at its next poll; message=None lets that window's new exports succeed again."""
        key = to_us(start)
        with self._lock:
            if message is None:
                self._failing.pop(key, None)
                return
            self._failing[key] = message
            for op in self._ops.values():
                if op.spec.start_us == key and op.state == "PENDING":
                    op.error = message

    def clear_faults(self) -> None:
        self.book.clear()

    def reset_stats(self) -> None:
        """Zero the request counters (fault numbering restarts), the fault log, bytes and the rate-limit window."""
        self.book.reset_counts()
        with self._lock:
            self._bytes_served = 0
            self._rate_limited = 0
            self._downloads.clear()
            self._too_many_exports = 0
            self._preparing_max = self._preparing(time.monotonic())

    def stats(self) -> dict[str, t.Any]:
        files = [{"kind": s.kind, "format": s.fmt, "rows": e.rows, "bytes": e.size, "seconds": round(e.seconds, 3),
                  "ready": e.done.is_set(), "error": e.error} for s, e in self.cache.entries()]
        with self._lock:
            return {"requests": dict(self.book.counts), "faults": list(self.book.fired),
                    "bytes_served": self._bytes_served, "rate_limited": self._rate_limited,
                    "operations": len(self._ops), "preparing": self._preparing(time.monotonic()),
                    "max_preparing": self._preparing_max, "too_many_exports": self._too_many_exports,
                    "files": files}

    def expected_rows(self, start: t.Any, end: t.Any) -> list[dict[str, t.Any]]:
        """Rows with start <= EventStart < end, as the segment export has them (all fields), in file order."""
        return [dict(r) for batch in self.source.batches(to_us(start), to_us(end)) for r in batch]

    def expected_individuals(self, start: t.Any, end: t.Any) -> list[dict[str, t.Any]]:
        """Rows of an individuals export of [start, end) (all fields), in file order; see individuals.py."""
        return [dict(r) for batch in individual_rows(self.source, to_us(start), to_us(end)) for r in batch]

    def bundles(self) -> list[dict[str, int]]:
        """Every legacy bundle as {"Id", "Start", "Stop"}."""
        return [dict(b) for b in self._bundles]

    def _make_bundles(self) -> list[dict[str, int]]:
        step = self.bundle_hours * 3600
        s = self.source.range_start // 86_400 * 86_400
        out = []
        while s < self.source.range_end:
            out.append({"Id": s * 100 + self.bundle_hours * 2, "Start": s, "Stop": s + step})
            s += step
        return out

    def _served(self, n: int) -> None:
        with self._lock:
            self._bytes_served += n

    # ------------------------------------------------------------------ export preparation
    def ready_at(self, op: _Operation) -> float | None:
        """Monotonic time the operation's export is prepared (None: its file is still being built)."""
        if not op.entry.done.is_set():
            return None
        size_mb = op.entry.size / 1e6 if not op.entry.error else 0.0
        return op.created_mono + self.prepare_base + self.prepare_per_mb * size_mb

    def _being_prepared(self, op: _Operation, now: float) -> bool:
        if op.state == "FAILED" or op.error or op.entry.error:
            return False
        ready = self.ready_at(op)
        return op.stuck or ready is None or now < ready

    def _preparing(self, now: float) -> int:
        """Operations being prepared at this moment (caller holds the lock)."""
        return sum(self._being_prepared(op, now) for op in self._ops.values())

    def admit(self, op: _Operation) -> int:
        """Register a new operation; 0, or (max_preparing reached) seconds until one finishes."""
        now = time.monotonic()
        with self._lock:
            busy = [op for op in self._ops.values() if self._being_prepared(op, now)]
            if self.max_preparing and len(busy) >= self.max_preparing:
                self._too_many_exports += 1
                ends = [r for r in map(self.ready_at, busy) if r is not None]
                return max(1, math.ceil(min(ends) - now)) if ends else 1
            op.error = self._failing.get(op.spec.start_us, "")
            self._ops[op.id] = op
            self._by_export[op.search_export_id] = op
            self._preparing_max = max(self._preparing_max, len(busy) + 1)
            return 0

    def _rate_limit(self) -> int:
        """0 if a legacy download may start now (and record it), else seconds until a slot frees."""
        if self.rate_limit_per_minute <= 0:
            return 0
        now = time.monotonic()
        with self._lock:
            while self._downloads and self._downloads[0] <= now - self.rate_limit_window:
                self._downloads.popleft()
            if len(self._downloads) >= self.rate_limit_per_minute:
                self._rate_limited += 1
                return max(1, math.ceil(self._downloads[0] + self.rate_limit_window - now))
            self._downloads.append(now)
            return 0


def parse_prepare(value: t.Any) -> tuple[float, float]:
    """`BASE[,PER_MB]` (text, a number or a pair) -> (base seconds, seconds per MB of the export file)."""
    if isinstance(value, (tuple, list)):
        parts = [float(x) for x in value]
    elif isinstance(value, (int, float)):
        parts = [float(value)]
    else:
        try:
            parts = [float(x) for x in str(value).split(",")]
        except ValueError:
            raise ValueError(f"prepare_seconds: {value!r} is not BASE[,PER_MB] (e.g. 20 or 10,0.5)") from None
    if not 1 <= len(parts) <= 2 or any(x < 0 or x != x for x in parts):
        raise ValueError(f"prepare_seconds: {value!r} is not BASE[,PER_MB] with numbers >= 0")
    return parts[0], (parts[1] if len(parts) == 2 else 0.0)


def _plain_date(value: t.Any) -> t.Any:
    """A plain date ('2024-01-01') means its midnight UTC; anything else is passed on as is."""
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        return value.strip() + "T00:00:00Z"
    return value


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64
    emu: Emulator
    aborted: set[int]

    def handle_error(self, request: t.Any, client_address: t.Any) -> None:
        """A client that hangs up (a killed tap, a reset fault) is normal here, not a traceback."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        self.aborted = set()
        super().__init__(*args, **kwargs)

    def shutdown_request(self, request: t.Any) -> None:
        """An aborted connection is closed without the FIN handshake: the client sees a reset."""
        if id(request) in self.aborted:
            self.aborted.discard(id(request))
            self.close_request(request)
        else:
            super().shutdown_request(request)


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
