"""The emulator's state: the organisation's data, export operations, signed URLs, bundles, counters and faults.

The HTTP handler reads and changes it; the `Emulator` adds the server's lifecycle on top. Kept apart from both so
the handler depends on the state alone, never on the emulator that runs it.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import re
import tempfile
import threading
import time
import typing as t
from pathlib import Path

import orjson

from . import faults as _faults
from .data import RowsFileSource, Source, SyntheticSource
from .files import Entry, FileCache, FileSpec
from .individuals import individual_rows
from .values import format_us, to_us


def _iso(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def now_us() -> int:
    return time.time_ns() // 1000


@dataclasses.dataclass
class Operation:
    """A segment export operation and its export; state advances only when polled."""

    id: str
    search_export_id: str
    segment_id: str
    spec: FileSpec
    entry: Entry
    created_us: int
    created_mono: float = dataclasses.field(default_factory=time.monotonic)
    finished_us: int = 0
    state: str = "PENDING"
    pct: int = 0
    polls_after_ready: int = 0
    error: str = ""
    stuck: bool = False

    def to_json(self) -> dict[str, t.Any]:
        doc: dict[str, t.Any] = {"id": self.id, "type": "SEARCH_EXPORT", "details": None, "results": None,
                                 "state": self.state, "errorDetails": self.error,
                                 "createdAt": format_us(self.created_us), "estimatePctComplete": self.pct}
        if self.state == "COMPLETED":
            doc["results"] = {"searchExportId": self.search_export_id,
                              "expires": format_us(self.created_us + 7 * 86_400_000_000)}
        if self.finished_us:
            doc["finishedAt"] = format_us(self.finished_us)
        return doc


class State:
    """The state behind FullStory's export APIs on one base URL: a deterministic organisation (or a rows file)."""

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
        #: Set when the emulator stops: stalled answers (the `stall` fault) end early.
        self.stopping = threading.Event()
        self._ops: dict[str, Operation] = {}
        self._by_export: dict[str, Operation] = {}
        self._tokens: dict[str, tuple[Operation, float]] = {}
        self._downloads: collections.deque[float] = collections.deque()
        #: Raw bodies of every export create request, in order (tests compare them byte for byte).
        self.create_bodies: list[bytes] = []
        self._bytes_served = 0
        self._rate_limited = 0
        self._preparing_max = 0
        self._too_many_exports = 0
        self._failing: dict[int | None, str] = {}
        self._bundles = self._make_bundles()

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

    def requests(self, endpoint: str | None = None) -> list[dict[str, t.Any]]:
        """The request log (oldest first; `FaultBook.log`), of one endpoint or all: tests read the waits between
        tries and the number of tries from it."""
        with self.book._lock:
            return [dict(e) for e in self.book.log if endpoint in (None, e["endpoint"])]

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

    def advance(self, op: Operation) -> None:
        """Move a polled operation on: PENDING until the file is built and (--prepare-seconds) its preparation
        time has passed, then --pending-polls more polls; estimatePctComplete rises meanwhile (with the elapsed
        share of that time)."""
        if op.state != "PENDING":
            return
        now = time.monotonic()
        ready = self.ready_at(op)
        if op.error or op.entry.error:
            op.error = op.error or f"export failed: {op.entry.error}"
            op.state, op.finished_us = "FAILED", now_us()
        elif ready is not None and not op.stuck and now < ready:
            share = (now - op.created_mono) / max(1e-9, ready - op.created_mono)
            op.pct = max(op.pct, min(99, int(100 * share)))
        elif op.stuck or ready is None or op.polls_after_ready < self.pending_polls:
            if ready is not None and not op.stuck:
                op.polls_after_ready += 1
            op.pct = min(99, max(op.pct + 1, op.pct + (99 - op.pct) // 3))
        else:
            op.state, op.pct, op.finished_us = "COMPLETED", 100, now_us()

    def window_of(self, endpoint: str, arg: str, body: bytes, params: t.Callable[[], dict[str, t.Any]]
                  ) -> list[str] | None:
        """[start, end) of the export window a request is about (for the fault log), if known."""
        spec: FileSpec | None = None
        if endpoint == "create":
            try:
                rng = orjson.loads(body or b"null").get("timeRange") or {}
                return [str(rng.get("start", "")), str(rng.get("end", ""))]
            except (ValueError, AttributeError):
                return None
        op = (self._ops.get(arg) if endpoint == "operation" else self._by_export.get(arg) if endpoint == "results"
              else (self._tokens.get(arg) or (None,))[0] if endpoint == "download" else None)
        if op is not None:
            spec = op.spec
        elif endpoint == "get":
            raw = str(params().get("id"))
            bundle = next((b for b in self._bundles if str(b["Id"]) == raw), None)
            return [_iso(bundle["Start"]), _iso(bundle["Stop"])] if bundle else None
        if spec is None or spec.start_us is None or spec.end_us is None:
            return None
        return [_iso(spec.start_us // 1_000_000), _iso(spec.end_us // 1_000_000)]

    # ------------------------------------------------------------------ export preparation
    def ready_at(self, op: Operation) -> float | None:
        """Monotonic time the operation's export is prepared (None: its file is still being built)."""
        if not op.entry.done.is_set():
            return None
        size_mb = op.entry.size / 1e6 if not op.entry.error else 0.0
        return op.created_mono + self.prepare_base + self.prepare_per_mb * size_mb

    def _being_prepared(self, op: Operation, now: float) -> bool:
        if op.state == "FAILED" or op.error or op.entry.error:
            return False
        ready = self.ready_at(op)
        return op.stuck or ready is None or now < ready

    def _preparing(self, now: float) -> int:
        """Operations being prepared at this moment (caller holds the lock)."""
        return sum(self._being_prepared(op, now) for op in self._ops.values())

    def admit(self, op: Operation) -> int:
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
