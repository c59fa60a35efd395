"""The FullStory export API emulator, driven over plain HTTP (no tap code)."""

from __future__ import annotations

import calendar
import csv
import datetime as dt
import gzip
import http.client
import io
import itertools
import json
import re
import signal
import subprocess
import sys
import time
import typing as t
import zlib
from urllib.parse import urlsplit

import pytest
import requests

from tap_fullstory.fields import MOBILE_FIELDS, STANDARD_FIELDS, requested_fields
from tap_fullstory.testing import Emulator

AUTH = {"Authorization": "Basic test-key"}
TS_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
TS_US = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
DAY0 = "2024-01-01T00:00:00Z"


def body(start: str = "", end: str = "", fields: list[str] | None = None, fmt: str = "FORMAT_JSON",
         **extra: t.Any) -> dict[str, t.Any]:
    doc = {"segmentId": "everyone", "type": "TYPE_EVENT", "format": fmt,
           "segmentTimeRange": {"start": "", "end": ""}, "timeRange": {"start": start, "end": end}}
    if fields is not None:
        doc["fields"] = fields
    return {**doc, **extra}


def create(emu: Emulator, doc: dict[str, t.Any]) -> str:
    r = requests.post(f"{emu.base_url}/segments/v1/exports", json=doc, headers=AUTH, timeout=10)
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"operationId"}
    return r.json()["operationId"]


def wait_op(emu: Emulator, op_id: str, limit: int = 500) -> list[dict[str, t.Any]]:
    """Poll until the operation leaves PENDING; returns every poll's document."""
    docs = []
    for _ in range(limit):
        r = requests.get(f"{emu.base_url}/operations/v1/{op_id}", headers=AUTH, timeout=10)
        assert r.status_code == 200, r.text
        docs.append(r.json())
        if docs[-1]["state"] != "PENDING":
            return docs
        time.sleep(0.01)
    raise AssertionError("operation stayed PENDING")


def location(emu: Emulator, export_id: str) -> str:
    r = requests.get(f"{emu.base_url}/search/v1/exports/{export_id}/results", headers=AUTH, timeout=10)
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"location", "expires"} and TS_MS.match(r.json()["expires"])
    return r.json()["location"]


def export(emu: Emulator, doc: dict[str, t.Any]) -> tuple[bytes, requests.Response]:
    """The whole flow: create, poll, results, download (without auth). Returns (gunzipped body, response)."""
    docs = wait_op(emu, create(emu, doc))
    assert docs[-1]["state"] == "COMPLETED", docs[-1]
    r = requests.get(location(emu, docs[-1]["results"]["searchExportId"]), timeout=30)
    assert r.status_code == 200, r.text
    return gzip.decompress(r.content), r


def unix(day: str) -> int:
    return calendar.timegm(dt.datetime.fromisoformat(day.replace("Z", "+00:00")).timetuple())


# ---------------------------------------------------------------- segment export
def test_segment_export_flow_shapes_and_selection(emulator: Emulator) -> None:
    start, end = "2024-01-01T05:00:00Z", "2024-01-01T07:30:00Z"
    op_id = create(emulator, body(start, end, requested_fields(mobile=False)))
    docs = wait_op(emulator, op_id)
    pending, done = docs[:-1], docs[-1]
    assert pending, "pending_polls=1 gives at least one PENDING poll"
    for p in pending:
        assert p["results"] is None and p["errorDetails"] == "" and p["details"] is None
        assert 0 <= p["estimatePctComplete"] < 100 and "finishedAt" not in p
    pcts = [p["estimatePctComplete"] for p in pending]
    assert pcts == sorted(pcts)
    assert done["state"] == "COMPLETED" and done["type"] == "SEARCH_EXPORT" and done["id"] == op_id
    assert done["estimatePctComplete"] == 100 and done["errorDetails"] == "" and done["details"] is None
    assert TS_US.match(done["createdAt"]) and TS_US.match(done["finishedAt"])
    assert set(done["results"]) == {"searchExportId", "expires"}
    r = requests.get(location(emulator, done["results"]["searchExportId"]), timeout=10)
    assert r.status_code == 200 and "Content-Encoding" not in r.headers
    assert r.content[:2] == b"\x1f\x8b" and int(r.headers["Content-Length"]) == len(r.content)
    assert re.fullmatch(r'attachment; filename="everyone_\d{4}-\d\d-\d\d\.json\.gz"', r.headers["Content-Disposition"])
    text = gzip.decompress(r.content)
    assert not text.endswith(b"\n") and b"\n" not in text.replace(b"\\n", b"")
    rows = json.loads(text)
    expected = emulator.expected_rows(start, end)
    assert rows == expected and len(rows) > 100
    stamps = [row["EventStart"] for row in rows]
    assert stamps == sorted(stamps) and stamps[0] >= "2024-01-01T05:00:00.000Z" and stamps[-1] < "2024-01-01T07:30"
    assert all(list(row) == sorted(row) for row in rows)


def test_field_selection_formats_and_validation(emulator: Emulator) -> None:
    start, end = "2024-01-02T00:00:00Z", "2024-01-02T02:00:00Z"
    expected = emulator.expected_rows(start, end)
    text, _ = export(emulator, body(start, end, ["EventStart", "EventType", "LoadEventTime", "evt_*"]))
    rows = json.loads(text)
    assert len(rows) == len(expected)
    for got, want in zip(rows, expected, strict=True):
        keep = {k: v for k, v in want.items() if k in ("EventStart", "EventType", "LoadEventTime") or k.startswith("evt_")}
        assert got == keep
    text, _ = export(emulator, body(start, end, []))  # empty = every key
    assert json.loads(text) == expected
    text, r = export(emulator, body(start, end, fmt="FORMAT_NDJSON"))
    assert r.headers["Content-Disposition"].endswith('.ndjson.gz"') and text.endswith(b"\n")
    assert [json.loads(line) for line in text.splitlines()] == expected
    text, r = export(emulator, body(start, end, ["EventStart", "UserId", "user_*"], fmt="FORMAT_CSV"))
    table = list(csv.reader(io.StringIO(text.decode())))
    assert table[0][:2] == ["EventStart", "UserId"] and all(c.startswith("user_") for c in table[0][2:])
    assert len(table) == len(expected) + 1 and table[1][1] == str(expected[0]["UserId"])
    text, _ = export(emulator, body(start, end, ["EventStart"], type="TYPE_INDIVIDUAL"))
    assert json.loads(text) == [] or all(set(r) <= {"EventStart"} for r in json.loads(text))
    bad = [{"segmentId": ""}, body(type="TYPE_X"), body(fmt="FORMAT_XML"), body("yesterday"),
           body(fields=["EventStart", "EventStart"]), body(fields=["Event*"]), body(end="2024-01-01T00:00:00Z",
           start="2024-01-02T00:00:00Z")]
    for doc in bad:
        r = requests.post(f"{emulator.base_url}/segments/v1/exports", json=doc, headers=AUTH, timeout=10)
        assert r.status_code == 400 and r.json()["code"] == "invalid_argument" and r.json()["message"], doc
    r = requests.post(f"{emulator.base_url}/segments/v1/exports", data=b"{not json", headers=AUTH, timeout=10)
    assert r.status_code == 400


def test_unknown_ids_and_operations_list(make_emulator: t.Callable[..., Emulator]) -> None:
    emu = make_emulator(days=1, pending_polls=0)
    assert requests.get(f"{emu.base_url}/operations/v1/nope", headers=AUTH, timeout=10).status_code == 404
    assert requests.get(f"{emu.base_url}/search/v1/exports/nope/results", headers=AUTH, timeout=10).status_code == 404
    assert requests.get(f"{emu.base_url}/download/nope", timeout=10).status_code == 404
    ids = [create(emu, body(f"2024-01-01T0{h}:00:00Z", f"2024-01-01T0{h + 1}:00:00Z")) for h in range(5)]
    seen, token = [], None
    while True:
        params = {"limit": 2, **({"paginationToken": token} if token else {})}
        doc = requests.get(f"{emu.base_url}/operations/v1", params=params, headers=AUTH, timeout=10).json()
        assert len(doc["operations"]) <= 2
        seen += [op["id"] for op in doc["operations"]]
        token = doc.get("nextPaginationToken")
        if not token:
            break
    assert seen == ids
    r = requests.get(f"{emu.base_url}/operations/v1", params={"limit": 500}, headers=AUTH, timeout=10)
    assert r.status_code == 400
    segs = requests.get(f"{emu.base_url}/segments/v1", headers=AUTH, timeout=10).json()["segments"]
    assert any(s["id"] == "everyone" for s in segs)


# ---------------------------------------------------------------- hauser fidelity
def test_hauser_segment_export_is_byte_identical(hauser_emulator: Emulator, hauser_dir: t.Any) -> None:
    for day in range(26, 31):
        start, end = f"2020-08-{day}T00:00:00Z", f"2020-08-{day + 1}T00:00:00Z"
        text, _ = export(hauser_emulator, body(start, end, requested_fields(mobile=False)))
        assert text == (hauser_dir / "json" / f"{unix(start)}.json").read_bytes(), start
    text, _ = export(hauser_emulator, body("2020-08-26T00:00:00Z", "2020-08-31T00:00:00Z"))
    rows = json.loads(text)
    assert len(rows) == 144 and rows == hauser_emulator.expected_rows("2020-08-26T00:00:00Z", "2020-09-01T00:00:00Z")


def test_hauser_rows_through_bundles(hauser_emulator: Emulator, hauser_dir: t.Any) -> None:
    doc = requests.get(f"{hauser_emulator.base_url}/api/v1/export/list", params={"start": 0}, headers=AUTH,
                       timeout=10).json()
    assert [b["Start"] for b in doc["exports"]] == [unix(f"2020-08-{d}T00:00:00Z") for d in range(27, 31)]
    rows = []
    for b in doc["exports"]:
        assert b["Id"] == b["Start"] * 100 + 48 and b["Stop"] == b["Start"] + 86_400
        r = requests.get(f"{hauser_emulator.base_url}/api/v1/export/get", params={"id": b["Id"]}, headers=AUTH,
                         timeout=10)
        assert r.status_code == 200 and r.headers["Content-Type"] == "application/gzip"
        rows += json.loads(gzip.decompress(r.content))
    raw = json.loads((hauser_dir / "raw.json").read_text())
    assert len(rows) == 144
    key = lambda r: r["EventStart"]  # noqa: E731
    assert rows == sorted(raw, key=key)  # verbatim rows, legacy names untouched


# ---------------------------------------------------------------- legacy bundles
def test_legacy_paging_get_and_content_encoding(make_emulator: t.Callable[..., Emulator]) -> None:
    emu = make_emulator(days=2, bundle_hours=1, events_per_hour=20)
    pages, start = [], 0
    while True:
        doc = requests.get(f"{emu.base_url}/api/v1/export/list", params={"start": start}, headers=AUTH,
                           timeout=10).json()
        if not doc["exports"]:
            break
        assert len(doc["exports"]) <= 20
        pages.append(doc["exports"])
        start = doc["exports"][-1]["Stop"]
    assert [len(p) for p in pages] == [20, 20, 8]
    bundles = [b for p in pages for b in p]
    assert bundles[0]["Start"] == unix(DAY0) and all(b["Id"] == b["Start"] * 100 + 2 for b in bundles)
    assert all(a["Stop"] == b["Start"] for a, b in itertools.pairwise(bundles))
    mid = requests.post(f"{emu.base_url}/api/v1/export/list", json={"start": bundles[5]["Start"] + 1}, headers=AUTH,
                        timeout=10).json()["exports"]
    assert mid[0] == bundles[5]  # Stop > start: the bundle containing start comes first
    b = bundles[3]
    r = requests.get(f"{emu.base_url}/api/v1/export/get", params={"id": b["Id"]}, headers=AUTH, timeout=10)
    assert r.status_code == 200 and r.headers["Content-Disposition"] == 'attachment; filename="DataExport.json.gz"'
    rows = json.loads(gzip.decompress(r.content))
    want = emu.expected_rows(b["Start"], b["Stop"])
    assert len(rows) == len(want) > 0
    assert all("PageAgent" in row and "PageUserAgent" not in row and "EventTargetSelector" not in row for row in rows)
    assert any("EventTargetSelectorTok" in row for row in rows)
    assert [row["EventStart"] for row in rows] == [row["EventStart"] for row in want]
    assert requests.get(f"{emu.base_url}/api/v1/export/get", params={"id": 1}, headers=AUTH, timeout=10).status_code == 404
    assert requests.get(f"{emu.base_url}/api/v1/export/list", headers=AUTH, timeout=10).status_code == 400
    enc = make_emulator(days=1, bundle_content_encoding=True)
    first = enc.bundles()[0]
    r = requests.get(f"{enc.base_url}/api/v1/export/get", params={"id": first["Id"]}, headers=AUTH, timeout=10)
    assert r.headers["Content-Encoding"] == "gzip" and r.headers["Content-Type"] == "application/json"
    assert len(r.json()) == len(enc.expected_rows(first["Start"], first["Stop"]))  # requests decoded it


def test_rate_limit(make_emulator: t.Callable[..., Emulator]) -> None:
    emu = make_emulator(days=1, rate_limit_per_minute=2)
    url, bid = f"{emu.base_url}/api/v1/export/get", emu.bundles()[0]["Id"]
    assert [requests.get(url, params={"id": bid}, headers=AUTH, timeout=10).status_code for _ in range(2)] == [200] * 2
    r = requests.get(url, params={"id": bid}, headers=AUTH, timeout=10)
    assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 60 and r.json()["code"]
    assert emu.stats()["rate_limited"] == 1


def test_prepare_seconds_keep_exports_pending_and_are_counted(make_emulator: t.Callable[..., Emulator]) -> None:
    emu = make_emulator(days=1, pending_polls=0, prepare_seconds="0.4,0", max_preparing=2)
    first = create(emu, body(DAY0, "2024-01-01T06:00:00Z"))
    create(emu, body("2024-01-01T06:00:00Z", "2024-01-01T12:00:00Z"))
    refused = requests.post(f"{emu.base_url}/segments/v1/exports", headers=AUTH, timeout=10,
                            json=body("2024-01-01T12:00:00Z", "2024-01-01T18:00:00Z"))
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1 and refused.json()["code"]
    docs = wait_op(emu, first)
    pct = [d["estimatePctComplete"] for d in docs]
    assert docs[-1]["state"] == "COMPLETED" and len(docs) > 1 and pct == sorted(pct) and pct[-1] == 100
    created, finished = (dt.datetime.fromisoformat(docs[-1][k].replace("Z", "+00:00"))
                         for k in ("createdAt", "finishedAt"))
    assert finished - created >= dt.timedelta(seconds=0.4)  # never ready before its preparation time
    stats = emu.stats()
    assert stats["max_preparing"] == 2 and stats["too_many_exports"] == 1 and stats["operations"] == 2
    with pytest.raises(ValueError, match="prepare_seconds"):
        make_emulator(days=1, prepare_seconds="soon")


def test_failing_window_and_fault_log_names_the_window(make_emulator: t.Callable[..., Emulator]) -> None:
    emu = make_emulator(days=1, pending_polls=0)
    emu.fail_exports("2024-01-01T06:00:00Z", "export failed: quota")
    emu.add_fault("operation", "500", nth=1)
    ok_op = create(emu, body(DAY0, "2024-01-01T06:00:00Z"))
    bad_op = create(emu, body("2024-01-01T06:00:00Z", "2024-01-01T12:00:00Z"))
    assert requests.get(f"{emu.base_url}/operations/v1/{ok_op}", headers=AUTH, timeout=10).status_code == 500
    assert emu.stats()["faults"] == [{"endpoint": "operation", "kind": "500", "request_no": 1,
                                      "window": [DAY0, "2024-01-01T06:00:00Z"]}]
    assert wait_op(emu, ok_op)[-1]["state"] == "COMPLETED"
    failed = wait_op(emu, bad_op)[-1]
    assert failed["state"] == "FAILED" and failed["errorDetails"] == "export failed: quota"
    emu.fail_exports("2024-01-01T06:00:00Z", None)
    assert wait_op(emu, create(emu, body("2024-01-01T06:00:00Z", "2024-01-01T12:00:00Z")))[-1]["state"] == "COMPLETED"


# ---------------------------------------------------------------- auth, determinism, ranges
def test_auth_required_except_download(emulator: Emulator) -> None:
    base = emulator.base_url
    calls = [("post", "/segments/v1/exports", {"json": body()}), ("get", "/operations/v1/x", {}),
             ("get", "/operations/v1", {}), ("get", "/search/v1/exports/x/results", {}),
             ("get", "/api/v1/export/list?start=0", {}), ("get", "/api/v1/export/get?id=1", {}),
             ("get", "/segments/v1", {})]
    for method, path, kw in calls:
        for headers in ({}, {"Authorization": "Basic wrong"}, {"Authorization": "Bearer test-key"}):
            r = requests.request(method, base + path, headers=headers, timeout=10, **kw)
            assert r.status_code == 401 and r.json()["code"] == "unauthenticated", (path, headers)
    _, r = export(emulator, body("2024-01-01T00:00:00Z", "2024-01-01T01:00:00Z"))  # download sent no auth
    assert "Authorization" not in r.request.headers


def test_determinism_and_range_resume(make_emulator: t.Callable[..., Emulator]) -> None:
    opts = {"seed": 7, "days": 1, "events_per_hour": 200, "mobile": True}
    a, b = make_emulator(**opts), make_emulator(**opts)
    doc = body("2024-01-01T03:00:00Z", "2024-01-01T09:00:00Z", requested_fields(mobile=True))
    ta, ra = export(a, doc)
    tb, rb = export(b, doc)
    assert ra.content == rb.content and ta == tb
    bid = a.bundles()[0]["Id"]
    ga, gb = (requests.get(f"{e.base_url}/api/v1/export/get", params={"id": bid}, headers=AUTH, timeout=10).content
              for e in (a, b))
    assert ga == gb
    rows = json.loads(ta)
    assert all({n for n, _ in MOBILE_FIELDS} - {"EventMobileSourceFile"} <= set(r) for r in rows)
    other = make_emulator(**{**opts, "seed": 8})
    assert export(other, doc)[1].content != ra.content
    url = location(a, wait_op(a, create(a, doc))[-1]["results"]["searchExportId"])
    full = ra.content
    cut = len(full) // 3
    r = requests.get(url, headers={"Range": f"bytes={cut}-"}, timeout=10)
    assert r.status_code == 206 and r.headers["Content-Range"] == f"bytes {cut}-{len(full) - 1}/{len(full)}"
    assert full[:cut] + r.content == full
    r = requests.get(url, headers={"Range": "bytes=10-19"}, timeout=10)
    assert r.status_code == 206 and r.content == full[10:20]
    assert requests.get(url, headers={"Range": f"bytes={len(full)}-"}, timeout=10).status_code == 416
    r = requests.get(f"{a.base_url}/api/v1/export/get", params={"id": bid}, headers={**AUTH, "Range": "bytes=5-"},
                     timeout=10)
    assert r.status_code == 206 and r.content == ga[5:]


def test_synthetic_rows_look_like_fullstory(emulator: Emulator) -> None:
    rows = emulator.expected_rows(DAY0, "2024-01-04T00:00:00Z")
    assert 3 * 24 * 54 <= len(rows) <= 3 * 24 * 66
    known = {n for n, _ in STANDARD_FIELDS}
    ids = [r[k] for r in rows for k in ("IndvId", "UserId", "SessionId", "PageId")]
    assert all(isinstance(i, int) and len(str(i)) == 16 for i in ids) and any(i > 2**53 for i in ids)
    for r in rows:
        for k in ("EventStart", "PageStart", "SessionStart", "UserCreated"):
            assert TS_MS.match(r[k]), r[k]
        assert r["EventStart"] >= r["PageStart"] >= r["SessionStart"]
        assert ("LoadEventTime" in r) == (r["EventType"] == "load")
        assert ("ReqStatus" in r) == (r["EventType"] == "request")
        assert ("EventCustomName" in r) == (r["EventType"] in ("custom", "custom_error"))
        assert r.get("EventModDead", 1) == 1
        custom = [k for k in r if k not in known]
        assert all(k.startswith(("user_", "evt_", "page_")) for k in custom) and len(custom) <= 12
    assert any(r["EventStart"].endswith("0Z") for r in rows) and any(r["PageIp"] == "" for r in rows)
    assert any(isinstance(r.get("EventCumulativeLayoutShift"), float) for r in rows)
    assert any(isinstance(v, list) for r in rows for v in r.values())
    assert any("." in k for r in rows for k in r if k.startswith("evt_"))
    assert any(a == b for a, b in itertools.pairwise(rows)), "true repeats exist"
    # an hour is generated from (seed, hour) alone: a sub-range is a slice of the larger range
    part = emulator.expected_rows("2024-01-02T10:00:00Z", "2024-01-02T11:00:00Z")
    assert part == [r for r in rows if "2024-01-02T10" <= r["EventStart"] < "2024-01-02T11"]


# ---------------------------------------------------------------- faults
def test_status_faults_on_every_endpoint(make_emulator: t.Callable[..., Emulator]) -> None:
    emu = make_emulator(days=1, pending_polls=0)
    docs = wait_op(emu, create(emu, body("2024-01-01T00:00:00Z", "2024-01-01T01:00:00Z")))
    export_id = docs[-1]["results"]["searchExportId"]
    url = location(emu, export_id)
    bid = emu.bundles()[0]["Id"]
    calls = {"create": ("post", "/segments/v1/exports", {"json": body()}),
             "operation": ("get", f"/operations/v1/{docs[-1]['id']}", {}),
             "operations_list": ("get", "/operations/v1", {}),
             "results": ("get", f"/search/v1/exports/{export_id}/results", {}),
             "download": ("get", urlsplit(url).path, {}),
             "list": ("get", "/api/v1/export/list?start=0", {}),
             "get": ("get", f"/api/v1/export/get?id={bid}", {})}
    for endpoint, (method, path, kw) in calls.items():
        emu.reset_stats()
        emu.clear_faults()
        emu.add_fault(endpoint, "429_json", nth=2, retry_after=3)
        emu.add_fault(endpoint, "429_html", nth=3)
        emu.add_fault(endpoint, "500", nth=4)
        emu.add_fault(endpoint, "503", nth=5, retry_after=2)
        emu.add_fault(endpoint, "404", nth=6)
        emu.add_fault(endpoint, "401", nth=7)
        emu.add_fault(endpoint, "reset", nth=8)
        got = []
        for _ in range(7):
            r = requests.request(method, emu.base_url + path, headers=AUTH, timeout=10, **kw)
            got.append((r.status_code, r.headers.get("Retry-After"), r.headers["Content-Type"].split(";")[0]))
        assert got == [(200, None, got[0][2]), (429, "3", "application/json"), (429, "1", "text/html"),
                       (500, None, "application/json"), (503, "2", "text/html"), (404, None, "application/json"),
                       (401, None, "application/json")], endpoint
        with pytest.raises(requests.ConnectionError):
            requests.request(method, emu.base_url + path, headers=AUTH, timeout=10, **kw)
        assert requests.request(method, emu.base_url + path, headers=AUTH, timeout=10, **kw).status_code == 200
        stats = emu.stats()
        assert stats["requests"][endpoint] == 9
        assert [f["request_no"] for f in stats["faults"]] == [2, 3, 4, 5, 6, 7, 8]


def test_body_and_operation_faults(make_emulator: t.Callable[..., Emulator]) -> None:
    emu = make_emulator(days=1, pending_polls=0, events_per_hour=300, download_ttl=60)
    doc = body("2024-01-01T00:00:00Z", "2024-01-01T02:00:00Z")
    full_text, full = export(emu, doc)
    url = location(emu, wait_op(emu, create(emu, doc))[-1]["results"]["searchExportId"])
    emu.reset_stats()
    emu.add_fault("download", "expired", nth=1)
    emu.add_fault("download", "truncated_gzip", nth=2)
    emu.add_fault("download", "malformed_row", nth=3, row=4)
    emu.add_fault("download", "reset_after_bytes", nth=4, bytes=1000)
    r = requests.get(url, timeout=10)
    assert r.status_code == 403 and b"ExpiredToken" in r.content
    r = requests.get(url, timeout=10)
    assert r.status_code == 200 and r.content == full.content[: len(full.content) // 2]
    with pytest.raises((EOFError, zlib.error)):
        gzip.decompress(r.content)
    r = requests.get(url, timeout=10)
    with pytest.raises(json.JSONDecodeError):
        json.loads(gzip.decompress(r.content))
    rows = gzip.decompress(r.content).split(b"},{")
    assert b"not json" in rows[3] and len(rows) == len(json.loads(full_text))
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request("GET", parts.path)
    resp = conn.getresponse()
    assert resp.status == 200 and int(resp.getheader("Content-Length")) == len(full.content)
    with pytest.raises(http.client.IncompleteRead) as err:
        resp.read()
    got = err.value.partial
    assert len(got) == 1000
    r = requests.get(url, headers={"Range": f"bytes={len(got)}-"}, timeout=10)  # resume
    assert r.status_code == 206 and got + r.content == full.content
    assert [f["kind"] for f in emu.stats()["faults"]] == ["expired", "truncated_gzip", "malformed_row",
                                                          "reset_after_bytes"]
    emu.add_fault("operation", "failed", nth=1, message="boom")
    emu.add_fault("operation", "stuck_pending", nth=2)
    emu.reset_stats()
    failed = wait_op(emu, create(emu, doc))
    assert failed[-1]["state"] == "FAILED" and failed[-1]["errorDetails"] == "boom" and failed[-1]["results"] is None
    stuck_id = create(emu, doc)
    for _ in range(5):
        op = requests.get(f"{emu.base_url}/operations/v1/{stuck_id}", headers=AUTH, timeout=10).json()
        assert op["state"] == "PENDING"
    bid = emu.bundles()[0]["Id"]
    emu.add_fault("get", "malformed_row", nth=1, row=1)
    emu.add_fault("get", "reset_after_bytes", nth=2, bytes=10)
    r = requests.get(f"{emu.base_url}/api/v1/export/get", params={"id": bid}, headers=AUTH, timeout=10)
    assert gzip.decompress(r.content).startswith(b'[{"EventStart":"2024-01-01T00:00:00.000Z","EventType":"click",<<')
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(f"{emu.base_url}/api/v1/export/get", params={"id": bid}, headers=AUTH, timeout=10)
    with pytest.raises(ValueError):
        emu.add_fault("create", "truncated_gzip")
    with pytest.raises(ValueError):
        emu.add_fault("download", "nonsense")


def test_token_expiry_and_control_api(make_emulator: t.Callable[..., Emulator]) -> None:
    emu = make_emulator(days=1, pending_polls=0, download_ttl=0.3)
    docs = wait_op(emu, create(emu, body("2024-01-01T00:00:00Z", "2024-01-01T01:00:00Z")))
    export_id = docs[-1]["results"]["searchExportId"]
    url1, url2 = location(emu, export_id), location(emu, export_id)
    assert url1 != url2 and requests.get(url1, timeout=10).status_code == 200
    time.sleep(0.4)
    assert requests.get(url1, timeout=10).status_code == 403
    assert requests.get(location(emu, export_id), timeout=10).status_code == 200  # a fresh URL works again
    r = requests.post(f"{emu.base_url}/_emulator/faults", json={"endpoint": "list", "kind": "500", "nth": 1,
                                                                 "times": 2}, timeout=10)
    assert r.status_code == 200 and r.json()["faults"][0]["times"] == 2
    assert requests.post(f"{emu.base_url}/_emulator/faults", json={"endpoint": "x", "kind": "500"},
                         timeout=10).status_code == 400
    requests.post(f"{emu.base_url}/_emulator/reset", timeout=10)
    r = requests.post(f"{emu.base_url}/_emulator/faults", json={"endpoint": "list", "kind": "500", "nth": 1,
                                                                 "times": 2}, timeout=10)
    codes = [requests.get(f"{emu.base_url}/api/v1/export/list?start=0", headers=AUTH, timeout=10).status_code
             for _ in range(3)]
    assert codes == [500, 500, 200]
    stats = requests.get(f"{emu.base_url}/_emulator/stats", timeout=10).json()
    assert stats["requests"] == {"list": 3} and len(stats["faults"]) == 2 and stats["bytes_served"] == 0


def test_cli_serves_and_stops() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tap_fullstory.testing.emulator", "--port", "0", "--days", "1", "--api-key", "K",
         "--fault", "list:429_json:nth=1:retry_after=5", "--bundle-hours", "6"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        base = proc.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", base)
        r = requests.get(f"{base}/api/v1/export/list?start=0", headers={"Authorization": "Basic K"}, timeout=10)
        assert r.status_code == 429 and r.headers["Retry-After"] == "5"
        r = requests.get(f"{base}/api/v1/export/list?start=0", headers={"Authorization": "Basic K"}, timeout=10)
        assert len(r.json()["exports"]) == 4
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    out = subprocess.run([sys.executable, "-m", "tap_fullstory.testing.emulator", "--help"], capture_output=True,
                         text=True, check=True).stdout
    for opt in ("--host", "--port", "--api-key", "--seed", "--start", "--days", "--end", "--events-per-hour",
                "--users", "--mobile", "--rows-file", "--bundle-hours", "--bundle-content-encoding",
                "--rate-limit-per-minute", "--pending-polls", "--fault"):
        assert opt in out
