"""The emulator's HTTP request handler: routing, FullStory's answers, scripted faults, file serving.

It reads and changes the `State` its server carries and knows nothing of the `Emulator` that runs it.
"""

from __future__ import annotations

import base64
import dataclasses
import gzip
import re
import secrets
import socket
import struct
import time
import typing as t
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, unquote

import orjson

from . import faults as _faults
from .files import FORMATS, TYPES, Entry, FileSpec, validate_fields
from .server import Server
from .state import Operation, now_us
from .values import format_ms, to_us

_EXPIRED_XML = (b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>ExpiredToken</Code>"
                b"<Message>The provided token has expired.</Message></Error>")
_HTML_429 = b"<html><head><title>429 Too Many Requests</title></head><body><h1>Too Many Requests</h1></body></html>"
_HTML_503 = b"<html><head><title>503 Service Unavailable</title></head><body><h1>Service Unavailable</h1></body></html>"
_RESULTS_RE = re.compile(r"^/search/v1/exports/([^/]+)/results$")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server
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
        _, fault = emu.book.hit(endpoint, lambda: emu.window_of(endpoint, arg, self.body, self._params))
        if fault is not None and fault.kind in _faults.ANY:
            return self._generic_fault(fault)
        if fault is not None and fault.kind == "stall" and "bytes" not in fault.params:
            emu.stopping.wait(float(fault.params["seconds"]))  # then answer as usual, too late
            fault = None
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
        with emu._lock:
            emu.create_bodies.append(self.body)
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
        op = Operation(id=secrets.token_hex(12), search_export_id=secrets.token_urlsafe(32), segment_id=segment,
                        spec=spec, entry=emu.cache.get(spec), created_us=now_us())
        if wait := emu.admit(op):
            return self._error(429, "resource_exhausted", "too many exports are being prepared; retry later",
                               {"Retry-After": str(wait)})
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
            emu.advance(op)
            doc = op.to_json()
        self._json(200, doc)

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
        if kind == "raw_body" and fault is not None:
            ctype = headers.pop("Content-Type", "application/gzip")
            return self._send(200, gzip.compress(base64.b64decode(fault.params["raw_b64"])), ctype, headers)
        if kind == "malformed_row":
            spec = dataclasses.replace(spec, corrupt_row=int(fault.params.get("row", 1)) if fault else 1)
            entry = emu.cache.get(spec, background=False)
        elif kind == "raw_row" and fault is not None:
            spec = dataclasses.replace(spec, raw_rows=(fault.raw_row(),))
            entry = emu.cache.get(spec, background=False)
        elif kind == "misfit_values" and fault is not None:
            spec = dataclasses.replace(spec, misfit_every=int(fault.params["every"]))
            entry = emu.cache.get(spec, background=False)
        entry.done.wait()
        if entry.error:
            return self._error(500, "internal", f"could not build the file: {entry.error}")
        size = entry.size
        first, last, status = 0, size - 1, 200
        rng = self.headers.get("Range", "")
        if kind == "truncated_gzip" or (kind == "raw_row" and fault and fault.params.get("truncate")):
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
        limit = int(fault.params.get("bytes", 0)) if fault and kind in ("reset_after_bytes", "stall") else None
        to_send = count if limit is None else min(limit, count)
        sent = 0
        try:
            with open(entry.path, "rb") as f:
                sent = self.connection.sendfile(f, first, to_send) if to_send else 0
                if fault and kind == "stall":  # a body that stops mid-way, then goes on too late
                    emu.stopping.wait(float(fault.params["seconds"]))
                    sent += self.connection.sendfile(f, first + sent, count - sent) if count > sent else 0
                    limit = None
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
