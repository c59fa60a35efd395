"""A local FullStory export API emulator: a real HTTP server for the segment export and legacy bundle APIs.

It exists so the tap (and its tests) can exercise the whole export flow, faults, retries and resumable downloads
offline, at realistic scale. Run ``python -m tap_fullstory.testing.emulator --help`` for the CLI.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import math
import re
import secrets
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
import typing as t
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote

import orjson

from . import faults as _faults
from .data import RowsFileSource, Source, SyntheticSource, format_ms, format_us, to_us
from .files import FORMATS, TYPES, Entry, FileCache, FileSpec, validate_fields

_EXPIRED_XML = (b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>ExpiredToken</Code>"
                b"<Message>The provided token has expired.</Message></Error>")
_HTML_429 = b"<html><head><title>429 Too Many Requests</title></head><body><h1>Too Many Requests</h1></body></html>"
_HTML_503 = b"<html><head><title>503 Service Unavailable</title></head><body><h1>Service Unavailable</h1></body></html>"
_RESULTS_RE = re.compile(r"^/search/v1/exports/([^/]+)/results$")
_CHUNK = 1 << 20


def _now_us() -> int:
    return time.time_ns() // 1000


@dataclasses.dataclass
class _Operation:
    """A segment export operation and its export; state advances only when polled."""

    id: str
    search_export_id: str
    segment_id: str
    spec: FileSpec
    entry: Entry
    created_us: int
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


class Emulator:
    """FullStory's export APIs on one local base URL, serving a deterministic organisation (or a rows file)."""

    def __init__(self, api_key: str = "test-key", *, seed: int = 1, start: t.Any = "2024-01-01T00:00:00Z",
                 days: float = 3, end: t.Any = None, events_per_hour: int = 60, users: int = 50,
                 mobile: bool = False, rows_file: str | Path | None = None, bundle_hours: int = 24,
                 bundle_content_encoding: bool = False, rate_limit_per_minute: int = 0, pending_polls: int = 1,
                 host: str = "127.0.0.1", port: int = 0, download_ttl: float = 3600.0,
                 rate_limit_window: float = 60.0) -> None:
        self.api_key, self.host, self.port = api_key, host, port
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
            start_us = to_us(start)
            end_us = to_us(end) if end not in (None, "") else None
            if start_us is None:
                raise ValueError("start is required")
            if end_us is None:
                end_us = start_us + int(days * 86_400_000_000)
            self.source = SyntheticSource(seed=seed, start_s=start_us // 1_000_000, end_s=-(-end_us // 1_000_000),
                                          events_per_hour=events_per_hour, users=users, mobile=mobile)
        self._tmp = tempfile.TemporaryDirectory(prefix="fullstory-emulator-", ignore_cleanup_errors=True)
        self.cache = FileCache(self.source, Path(self._tmp.name))
        self.book = _faults.FaultBook()
        self._lock = threading.Lock()
        self._ops: dict[str, _Operation] = {}
        self._by_export: dict[str, _Operation] = {}
        self._tokens: dict[str, tuple[_Operation, float]] = {}
        self._downloads: collections.deque[float] = collections.deque()
        self._bytes_served = 0
        self._rate_limited = 0
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

    def clear_faults(self) -> None:
        self.book.clear()

    def reset_stats(self) -> None:
        """Zero the request counters (fault numbering restarts), the fault log, bytes and the rate-limit window."""
        self.book.reset_counts()
        with self._lock:
            self._bytes_served = 0
            self._rate_limited = 0
            self._downloads.clear()

    def stats(self) -> dict[str, t.Any]:
        files = [{"kind": s.kind, "format": s.fmt, "rows": e.rows, "bytes": e.size, "seconds": round(e.seconds, 3),
                  "ready": e.done.is_set(), "error": e.error} for s, e in self.cache.entries()]
        with self._lock:
            return {"requests": dict(self.book.counts), "faults": list(self.book.fired),
                    "bytes_served": self._bytes_served, "rate_limited": self._rate_limited,
                    "operations": len(self._ops), "files": files}

    def expected_rows(self, start: t.Any, end: t.Any) -> list[dict[str, t.Any]]:
        """Rows with start <= EventStart < end, as the segment export has them (all fields), in file order."""
        return [dict(r) for batch in self.source.batches(to_us(start), to_us(end)) for r in batch]

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


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    server_version = "FullStoryEmulator/1.0"
    timeout = 300  # idle keep-alive connections end eventually

    def log_message(self, format: str, *args: t.Any) -> None:  # quiet: tests read stats(), not logs
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # ------------------------------------------------------------------ plumbing
    def _send(self, status: int, body: bytes = b"", ctype: str = "application/json",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _json(self, status: int, doc: t.Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, orjson.dumps(doc), headers=headers)

    def _error(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        self._json(status, {"code": code, "message": message}, headers)

    def _abort(self) -> None:
        """Drop the connection with a TCP reset and no response."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.server.aborted.add(id(self.connection))
        self.close_connection = True

    def _dispatch(self, method: str) -> None:
        emu = self.server.emu
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        self.query = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        if path.startswith("/_emulator/"):
            return self._control(method, path)
        route = self._route(method, path)
        if route is None:
            return self._error(404, "not_found", f"no route for {method} {path}")
        endpoint, handler, arg = route
        _, fault = emu.book.hit(endpoint)
        if fault is not None and fault.kind in _faults.ANY:
            return self._generic_fault(fault)
        if endpoint != "download" and self.headers.get("Authorization", "") != f"Basic {emu.api_key}":
            return self._error(401, "unauthenticated", "missing or invalid API key; send 'Authorization: Basic <key>'")
        return handler(arg, fault)

    def _route(self, method: str, path: str) -> tuple[str, t.Callable[..., None], str] | None:
        read = method in ("GET", "HEAD")
        if path == "/segments/v1/exports" and method == "POST":
            return "create", self._create, ""
        if path == "/operations/v1" and read:
            return "operations_list", self._operations_list, ""
        if path.startswith("/operations/v1/") and read:
            return "operation", self._operation, unquote(path[len("/operations/v1/"):])
        if (m := _RESULTS_RE.match(path)) and read:
            return "results", self._results, unquote(m[1])
        if path.startswith("/download/") and read:
            return "download", self._download, path[len("/download/"):]
        if path == "/api/v1/export/list" and method in ("GET", "POST"):
            return "list", self._list, ""
        if path == "/api/v1/export/get" and method in ("GET", "POST", "HEAD"):
            return "get", self._get, ""
        if path == "/segments/v1" and read:
            return "segments", self._segments, ""
        return None

    def _generic_fault(self, fault: _faults.Fault) -> None:
        kind, p = fault.kind, fault.params
        retry = {"Retry-After": str(p.get("retry_after", 1))}
        if kind == "reset":
            self._abort()
        elif kind == "429_json":
            self._error(429, "resource_exhausted", "rate limit exceeded (injected)", retry)
        elif kind == "429_html":
            self._send(429, _HTML_429, "text/html; charset=utf-8", retry)
        elif kind == "500":
            self._error(500, "internal", "internal error (injected)")
        elif kind == "503":
            self._send(503, _HTML_503, "text/html; charset=utf-8", retry if "retry_after" in p else None)
        elif kind == "404":
            self._error(404, "not_found", "not found (injected)")
        elif kind == "401":
            self._error(401, "unauthenticated", "invalid API key (injected)")

    def _params(self) -> dict[str, t.Any]:
        """Query parameters, or the JSON body of a POST (the legacy API accepts both)."""
        if self.command == "POST" and self.body:
            try:
                doc = orjson.loads(self.body)
            except orjson.JSONDecodeError:
                return {}
            return doc if isinstance(doc, dict) else {}
        return self.query

    # ------------------------------------------------------------------ segment export
    def _create(self, _: str, fault: _faults.Fault | None) -> None:
        emu = self.server.emu
        try:
            doc = orjson.loads(self.body or b"null")
            if not isinstance(doc, dict):
                raise ValueError("request body must be a JSON object")
            segment = doc.get("segmentId", doc.get("segment_id"))
            if not isinstance(segment, str) or not segment:
                raise ValueError("segmentId is required")
            row_type, fmt = doc.get("type"), doc.get("format")
            if row_type not in TYPES:
                raise ValueError(f"type must be one of {', '.join(TYPES)}")
            if fmt not in FORMATS:
                raise ValueError(f"format must be one of {', '.join(FORMATS)}")
            rng = doc.get("timeRange", doc.get("time_range")) or {}
            if not isinstance(rng, dict):
                raise ValueError("timeRange must be an object")
            bounds = []
            for key in ("start", "end"):
                value = rng.get(key, "")
                if not isinstance(value, str):
                    raise ValueError(f"timeRange.{key} must be an RFC 3339 string or \"\"")
                bounds.append(to_us(value))
            if bounds[0] is not None and bounds[1] is not None and bounds[0] > bounds[1]:
                raise ValueError("timeRange.start is after timeRange.end")
            fields = validate_fields(doc.get("fields"))
        except ValueError as exc:  # orjson.JSONDecodeError is a ValueError
            return self._error(400, "invalid_argument", str(exc))
        spec = FileSpec("export", bounds[0], bounds[1], fields, fmt, row_type)
        op = _Operation(id=secrets.token_hex(12), search_export_id=secrets.token_urlsafe(32), segment_id=segment,
                        spec=spec, entry=emu.cache.get(spec), created_us=_now_us())
        with emu._lock:
            emu._ops[op.id] = op
            emu._by_export[op.search_export_id] = op
        self._json(200, {"operationId": op.id})

    def _operation(self, op_id: str, fault: _faults.Fault | None) -> None:
        emu = self.server.emu
        op = emu._ops.get(op_id)
        if op is None:
            return self._error(404, "not_found", f"operation {op_id!r} not found")
        with emu._lock:
            if fault is not None and op.state == "PENDING":
                if fault.kind == "failed":
                    op.error = str(fault.params.get("message", "export failed: internal error (injected)"))
                elif fault.kind == "stuck_pending":
                    op.stuck = True
            self._advance(op)
            doc = op.to_json()
        self._json(200, doc)

    def _advance(self, op: _Operation) -> None:
        emu = self.server.emu
        if op.state != "PENDING":
            return
        if op.error or op.entry.error:
            op.error = op.error or f"export failed: {op.entry.error}"
            op.state, op.finished_us = "FAILED", _now_us()
        elif op.stuck or not op.entry.done.is_set() or op.polls_after_ready < emu.pending_polls:
            if op.entry.done.is_set() and not op.stuck:
                op.polls_after_ready += 1
            op.pct = min(99, max(op.pct + 1, op.pct + (99 - op.pct) // 3))
        else:
            op.state, op.pct, op.finished_us = "COMPLETED", 100, _now_us()

    def _operations_list(self, _: str, fault: _faults.Fault | None) -> None:
        emu = self.server.emu
        try:
            limit = int(self.query.get("limit") or 100)
            offset = int(self.query.get("paginationToken") or 0)
            if not 1 <= limit <= 100 or offset < 0:
                raise ValueError
        except ValueError:
            return self._error(400, "invalid_argument", "limit must be 1..100 and paginationToken one we returned")
        with emu._lock:
            ops = [op for op in emu._ops.values()
                   if self.query.get("state") in (None, "", op.state)
                   and self.query.get("type") in (None, "", "SEARCH_EXPORT")]
            page = [op.to_json() for op in ops[offset:offset + limit]]
        doc: dict[str, t.Any] = {"operations": page}
        if offset + limit < len(ops):
            doc["nextPaginationToken"] = str(offset + limit)
        self._json(200, doc)

    def _results(self, export_id: str, fault: _faults.Fault | None) -> None:
        emu = self.server.emu
        op = emu._by_export.get(export_id)
        if op is None or op.state != "COMPLETED":
            return self._error(404, "not_found", f"search export {export_id!r} not found or not completed")
        token = secrets.token_urlsafe(24)
        expires = time.time() + emu.download_ttl
        with emu._lock:
            emu._tokens[token] = (op, time.monotonic() + emu.download_ttl)
        self._json(200, {"location": f"{emu.base_url}/download/{token}",
                         "expires": format_ms(int(expires * 1000))})

    def _download(self, token: str, fault: _faults.Fault | None) -> None:
        emu = self.server.emu
        found = emu._tokens.get(token)
        if found is None:
            return self._send(404, b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>NoSuchKey</Code></Error>",
                              "application/xml")
        op, deadline = found
        if (fault is not None and fault.kind == "expired") or time.monotonic() > deadline:
            return self._send(403, _EXPIRED_XML, "application/xml")
        ext = FORMATS[op.spec.fmt]
        day = time.strftime("%Y-%m-%d", time.gmtime(op.created_us // 1_000_000))
        name = re.sub(r'["\\/\r\n]', "_", op.segment_id)
        self._serve_file(op.spec, op.entry, {"Content-Type": "application/gzip",
                                             "Content-Disposition": f'attachment; filename="{name}_{day}.{ext}.gz"'},
                         fault)

    # ------------------------------------------------------------------ legacy bundles
    def _list(self, _: str, fault: _faults.Fault | None) -> None:
        try:
            start = int(str(self._params().get("start")))
        except (TypeError, ValueError):
            return self._error(400, "invalid_argument", "start (unix seconds) is required")
        found = [b for b in self.server.emu._bundles if b["Stop"] > start][:20]
        self._json(200, {"exports": found})

    def _get(self, _: str, fault: _faults.Fault | None) -> None:
        emu = self.server.emu
        raw = self._params().get("id")
        bundle = next((b for b in emu._bundles if str(b["Id"]) == str(raw)), None)
        if bundle is None:
            return self._error(404, "not_found", f"no export bundle with id {raw!r}")
        if self.command != "HEAD" and (wait := emu._rate_limit()):
            return self._error(429, "resource_exhausted", "export downloads are limited per minute",
                               {"Retry-After": str(wait)})
        spec = FileSpec("bundle", bundle["Start"] * 1_000_000, bundle["Stop"] * 1_000_000)
        if emu.bundle_content_encoding:
            headers = {"Content-Type": "application/json", "Content-Encoding": "gzip",
                       "Content-Disposition": 'attachment; filename="DataExport.json"'}
        else:
            headers = {"Content-Type": "application/gzip",
                       "Content-Disposition": 'attachment; filename="DataExport.json.gz"'}
        self._serve_file(spec, emu.cache.get(spec, background=False), headers, fault)

    # ------------------------------------------------------------------ file streaming
    def _serve_file(self, spec: FileSpec, entry: Entry, headers: dict[str, str],
                    fault: _faults.Fault | None) -> None:
        emu = self.server.emu
        kind = fault.kind if fault is not None else ""
        if kind == "expired":
            return self._send(403, _EXPIRED_XML, "application/xml")
        if kind == "malformed_row":
            spec = dataclasses.replace(spec, corrupt_row=int(fault.params.get("row", 1)) if fault else 1)
            entry = emu.cache.get(spec, background=False)
        entry.done.wait()
        if entry.error:
            return self._error(500, "internal", f"could not build the file: {entry.error}")
        size = entry.size
        first, last, status = 0, size - 1, 200
        rng = self.headers.get("Range", "")
        if kind == "truncated_gzip":
            last = size // 2 - 1
        elif m := re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", rng):
            if m[1]:
                first = int(m[1])
                last = min(int(m[2]), size - 1) if m[2] else size - 1
            elif m[2]:  # suffix range: the last N bytes
                first = max(0, size - int(m[2]))
            if first >= size or first > last:
                return self._send(416, b"", headers={"Content-Range": f"bytes */{size}"})
            status = 206
        count = last - first + 1
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(count))
        if status == 206:
            self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.end_headers()
        if self.command == "HEAD":
            return
        limit = int(fault.params.get("bytes", 0)) if fault and kind == "reset_after_bytes" else None
        to_send = count if limit is None else min(limit, count)
        sent = 0
        try:
            with open(entry.path, "rb") as f:
                sent = self.connection.sendfile(f, first, to_send) if to_send else 0
        except OSError:  # client went away mid-body
            self.close_connection = True
        emu._served(sent)
        if limit is not None:
            self.close_connection = True  # body cut short: the client sees an early EOF

    # ------------------------------------------------------------------ misc
    def _segments(self, _: str, fault: _faults.Fault | None) -> None:
        self._json(200, {"segments": [
            {"id": "everyone", "name": "Everyone", "creator": "", "url": "https://app.fullstory.com/"},
            {"id": "rageClicks", "name": "Rage Clicks", "creator": "", "url": "https://app.fullstory.com/"}]})

    def _control(self, method: str, path: str) -> None:
        emu = self.server.emu
        if path == "/_emulator/stats" and method == "GET":
            return self._json(200, emu.stats())
        if path == "/_emulator/reset" and method == "POST":
            emu.reset_stats()
            emu.clear_faults()
            return self._json(200, {"ok": True})
        if path == "/_emulator/faults" and method == "DELETE":
            emu.clear_faults()
            return self._json(200, {"faults": []})
        if path == "/_emulator/faults" and method in ("GET", "POST"):
            if method == "POST":
                try:
                    doc = orjson.loads(self.body or b"null")
                    for item in doc if isinstance(doc, list) else [doc]:
                        if not isinstance(item, dict):
                            raise ValueError("a fault is a JSON object {endpoint, kind, nth, times, ...}")
                        emu.book.add(_faults.from_dict(item))
                except ValueError as exc:
                    return self._error(400, "invalid_argument", str(exc))
            return self._json(200, {"faults": [f.to_dict() for f in emu.book.faults]})
        return self._error(404, "not_found", f"no control route {method} {path}")


# ---------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tap_fullstory.testing.emulator",
                                description="Local FullStory export API emulator (segment export + legacy bundles). "
                                            "Prints the base URL as the first stdout line, then serves until "
                                            "SIGTERM/SIGINT.")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default loopback only: 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port; 0 = pick a free one (default)")
    p.add_argument("--api-key", default="test-key", help="accepted key for 'Authorization: Basic <key>'")
    p.add_argument("--seed", type=int, default=1, help="synthetic data seed (same options -> identical files)")
    p.add_argument("--start", default="2024-01-01T00:00:00Z", help="organisation start, RFC 3339")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--days", type=float, default=3, help="organisation length in days (default 3)")
    g.add_argument("--end", default=None, help="organisation end, RFC 3339 (instead of --days)")
    p.add_argument("--events-per-hour", type=int, default=60, help="average synthetic events per hour (±10%%)")
    p.add_argument("--users", type=int, default=50, help="synthetic users (devices)")
    p.add_argument("--mobile", action="store_true", help="add the 8 mobile App* fields")
    p.add_argument("--rows-file", default=None, help="serve this JSON array of events instead of synthetic data")
    p.add_argument("--bundle-hours", type=int, default=24, help="legacy bundle length in hours (default 24)")
    p.add_argument("--bundle-content-encoding", action="store_true",
                   help="serve legacy bundles as Content-Encoding: gzip + application/json")
    p.add_argument("--rate-limit-per-minute", type=int, default=0,
                   help="legacy downloads allowed per rolling minute (0 = unlimited; FullStory documents 2)")
    p.add_argument("--rate-limit-window", type=float, default=60.0,
                   help="seconds of the rolling rate-limit window (FullStory: 60; shorter for tests)")
    p.add_argument("--pending-polls", type=int, default=1, help="extra PENDING polls once an export is ready")
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
                   rows_file=args.rows_file, bundle_hours=args.bundle_hours,
                   bundle_content_encoding=args.bundle_content_encoding,
                   rate_limit_per_minute=args.rate_limit_per_minute, pending_polls=args.pending_polls,
                   host=args.host, port=args.port, download_ttl=args.download_ttl,
                   rate_limit_window=args.rate_limit_window)
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
