"""Fault scripting: "the nth request to endpoint E gets fault K", for retry/resume tests.

Requests are counted per endpoint since start/reset; a fault matches requests nth .. nth+times-1.

`raw_row` serves bytes the emulator's own encoder could never write (a lone surrogate escape,
invalid UTF-8, a raw NUL, a truncated line...) verbatim in the file: params `raw_b64` (the bytes,
base64; the Python API also takes `raw=b"..."`), `row` (1-based position in the file; default 1;
past the last row: appended), `mode` (`insert`, the default: the other rows stay as they are,
or `replace`) and `truncate` (also cut the body in half, as `truncated_gzip` does). In NDJSON the bytes are one line (or several, if they hold newlines); in a JSON
array one element (the bytes go between the commas as they are).

`misfit_values` serves values that do not fit their field's catalogue type (`data.MISFITS`: "" in
a timestamp or integer field, a word, a fraction, a boolean...) in every `every`-th row (default
7; JSON formats), so the misfit rule (tap_fullstory/fits.py) is tested end to end.

`raw_body` serves `raw_b64` (or `raw=b"..."`) gzip-compressed as the whole body: an HTML error page, say, where
the export should be.

`stall` holds the answer back for `seconds` (default 30; the emulator's stop ends it early), then answers as usual:
a response slower than the client's timeout. On download/get, `bytes=N` sends the headers and N body bytes first
(a body that stalls mid-way).

Every request is logged (`FaultBook.log`: time, endpoint, number, fault) on the book's `clock`, which a test may
replace with a virtual one to read the waits between tries without sleeping them.
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import threading
import time
import typing as t

ENDPOINTS = ("create", "operation", "operations_list", "results", "download", "list", "get", "segments")
ANY = ("429_json", "429_html", "500", "503", "reset", "404", "401")
BODY = ("reset_after_bytes", "truncated_gzip", "malformed_row", "raw_row", "raw_body", "expired",
        "misfit_values")  # download/get only
OPERATION = ("failed", "stuck_pending")  # operation only
DELAY = ("stall",)  # any endpoint; the answer comes late
KINDS = ANY + BODY + OPERATION + DELAY
#: Requests kept in the log (a long soak must not grow it without bound).
LOG_SIZE = 100_000


@dataclasses.dataclass
class Fault:
    """One scripted fault; params carry kind-specific values (retry_after, bytes, row, message)."""

    endpoint: str
    kind: str
    nth: int = 1
    times: int = 1
    params: dict[str, t.Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {self.endpoint!r}; one of {', '.join(ENDPOINTS)}")
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {', '.join(KINDS)}")
        if self.kind in BODY and self.endpoint not in ("download", "get"):
            raise ValueError(f"fault {self.kind!r} applies to download/get only")
        if self.kind in OPERATION and self.endpoint != "operation":
            raise ValueError(f"fault {self.kind!r} applies to the operation endpoint only")
        if self.kind == "stall":
            if float(self.params.setdefault("seconds", 30)) < 0:
                raise ValueError("stall seconds must be >= 0")
            if "bytes" in self.params and self.endpoint not in ("download", "get"):
                raise ValueError("stall bytes=N (a body that stalls mid-way) applies to download/get only")
        self.nth, self.times = int(self.nth), int(self.times)
        if self.nth < 1 or self.times < 1:
            raise ValueError("nth and times must be >= 1")
        if self.kind in ("raw_row", "raw_body"):
            raw = self.params.pop("raw", None)
            if raw is not None:
                self.params["raw_b64"] = base64.b64encode(bytes(raw)).decode()
            if not isinstance(self.params.get("raw_b64"), str):
                raise ValueError(f"{self.kind} needs raw_b64 (the bytes, base64)")
        if self.kind == "raw_row":
            if self.params.setdefault("mode", "insert") not in ("insert", "replace"):
                raise ValueError("raw_row mode must be insert or replace")
            if int(self.params.setdefault("row", 1)) < 1:
                raise ValueError("raw_row row must be >= 1")
        if self.kind == "misfit_values" and int(self.params.setdefault("every", 7)) < 1:
            raise ValueError("misfit_values every must be >= 1")

    def raw_row(self) -> tuple[int, bytes, bool]:
        """(position, bytes, replace) of a raw_row fault."""
        return (int(self.params["row"]), base64.b64decode(self.params["raw_b64"]),
                self.params["mode"] == "replace")

    def matches(self, endpoint: str, request_no: int) -> bool:
        return endpoint == self.endpoint and self.nth <= request_no < self.nth + self.times

    def to_dict(self) -> dict[str, t.Any]:
        return {"endpoint": self.endpoint, "kind": self.kind, "nth": self.nth, "times": self.times, **self.params}


def _scalar(text: str) -> t.Any:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def parse_spec(spec: str) -> Fault:
    """CLI form ``endpoint:kind[:key=value...]``, e.g. ``download:429_json:nth=2:retry_after=1``."""
    parts = spec.split(":")
    if len(parts) < 2:
        raise ValueError(f"fault spec {spec!r}: expected endpoint:kind[:key=value...]")
    kwargs: dict[str, t.Any] = {}
    for item in parts[2:]:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"fault spec {spec!r}: {item!r} is not key=value")
        kwargs[key.strip()] = _scalar(value.strip())
    return from_dict({"endpoint": parts[0], "kind": parts[1], **kwargs})


def from_dict(data: dict[str, t.Any]) -> Fault:
    """JSON/kwargs form: endpoint, kind, nth, times, plus kind parameters."""
    data = dict(data)
    try:
        endpoint, kind = data.pop("endpoint"), data.pop("kind")
    except KeyError as exc:
        raise ValueError(f"fault needs {exc.args[0]!r}") from None
    nth, times = data.pop("nth", 1), data.pop("times", 1)
    return Fault(str(endpoint), str(kind), int(nth), int(times), data)


class FaultBook:
    """Thread-safe request counters, scripted faults, the log of faults fired and the log of every request."""

    def __init__(self, clock: t.Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self.faults: list[Fault] = []
        self.counts: dict[str, int] = {}
        self.fired: list[dict[str, t.Any]] = []
        #: When each request came: monotonic seconds, or a test's virtual clock.
        self.clock = clock
        #: Every request, in order: {"t", "endpoint", "request_no", "fault"} (fault: its kind, or None).
        self.log: collections.deque[dict[str, t.Any]] = collections.deque(maxlen=LOG_SIZE)

    def add(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()

    def reset_counts(self) -> None:
        with self._lock:
            self.counts.clear()
            self.fired.clear()
            self.log.clear()

    def hit(self, endpoint: str, window: t.Callable[[], list[str] | None] | None = None
            ) -> tuple[int, Fault | None]:
        """Count a request to endpoint; return its number and the fault it gets, if any (first added wins).

        `window` names the export window the request is about ([start, end)); a fired fault records it, so
        a test knows which window a fault hit even when windows are prepared concurrently."""
        with self._lock:
            n = self.counts[endpoint] = self.counts.get(endpoint, 0) + 1
            found = next((fault for fault in self.faults if fault.matches(endpoint, n)), None)
            self.log.append({"t": self.clock(), "endpoint": endpoint, "request_no": n,
                             "fault": found.kind if found else None})
            if found is not None:
                entry: dict[str, t.Any] = {"endpoint": endpoint, "kind": found.kind, "request_no": n}
                if window is not None and (span := window()):
                    entry["window"] = span
                self.fired.append(entry)
            return n, found
