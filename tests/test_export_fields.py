"""`export_fields` (issue #14): `hauser` sends hauser's request, `all` sends no `fields` and nothing is lost.

The emulator's `new_fields` organisation carries EventDuration / EventSecondaryDuration on `seen` events: fields
FullStory documents but that hauser and the tap's catalogue do not know, like any field FullStory adds later.
"""

from __future__ import annotations

import gzip
import json
import typing as t
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tap_fullstory.settings import Settings
from tap_fullstory.testing import Emulator
from tap_fullstory.windows import ConfigError
from tests.tapio import TapRun, run_tap

START, END = "2024-01-01T00:00:00Z", "2024-01-01T12:00:00Z"
NEW = ("EventDuration", "EventSecondaryDuration")

# The body hauser v1.5.1 sends (client/export.go, warehouse/schema.go), as given in the reference notes, for a
# fresh table; the tap asks for NDJSON instead of hauser's FORMAT_JSON (it streams the export line by line).
HAUSER_FIELDS = [
    "IndvId", "UserId", "SessionId", "PageId", "UserCreated", "UserAppKey", "UserDisplayName", "UserEmail",
    "EventStart", "EventType", "EventSubType", "EventCustomName", "EventTargetText", "EventTargetSelector",
    "EventPageOffset", "EventSessionOffset", "EventModFrustrated", "EventModDead", "EventModError",
    "EventModSuspicious", "EventVarErrorKind", "EventVarFields", "EventWebSourceFileUrl",
    "EventFirstInputDelay", "EventCumulativeLayoutShift", "SessionStart", "PageName", "PageStart",
    "PageDuration", "PageActiveDuration", "PageUrl", "PageRefererUrl", "PageIp", "PageLatLong",
    "PageUserAgent", "PageBrowser", "PageBrowserVersion", "PageDevice", "PagePlatform",
    "PageOperatingSystem", "PageScreenWidth", "PageScreenHeight", "PageViewportWidth", "PageViewportHeight",
    "PageNumEvents", "PageNumDerivedEvents", "PageNumInfos", "PageNumWarnings", "PageNumErrors",
    "PageClusterId", "PageMaxScrollDepthPercent", "LoadDomContentTime", "LoadEventTime",
    "LoadFirstPaintTime", "LoadLargestPaintTime", "ReqUrl", "ReqMethod", "ReqStatus",
    "user_*", "evt_*", "page_*",
]
HAUSER_MOBILE = ["AppName", "AppPackageName", "AppDeviceModel", "AppDeviceVendor", "AppVersion",
                 "AppOsVersion", "AppViewName", "EventMobileSourceFile"]


def hauser_body(start: str, end: str, fields: list[str]) -> dict[str, t.Any]:
    return {"segmentId": "everyone", "type": "TYPE_EVENT", "format": "FORMAT_NDJSON",
            "segmentTimeRange": {"start": "", "end": ""}, "timeRange": {"start": start, "end": end},
            "fields": fields}


def config(emu: Emulator, **extra: t.Any) -> dict[str, t.Any]:
    return {"api_key": "test-key", "api_url": emu.base_url, "start_date": START, "end_date": END,
            "export_window": "6h", "poll_interval": 0.01, **extra}


def ok(run: TapRun) -> TapRun:
    assert run.returncode == 0, run.stderr[-3000:]
    return run


@pytest.fixture(scope="module")
def new_org(make_emulator_module) -> Emulator:
    return make_emulator_module(seed=41, start="2024-01-01", days=1, events_per_hour=400, new_fields=True)


def expected_new(emu: Emulator) -> list[dict[str, int]]:
    """The unknown fields' values, row by row, as the emulator serves them."""
    values = [{k: r[k] for k in NEW if k in r} for r in emu.expected_rows(START, END)]
    assert sum(1 for v in values if v) > 50, "too few rows with the unknown fields: the test would prove little"
    return values


# ---------------------------------------------------------------- requests


@pytest.mark.parametrize("mobile", [False, True])
def test_hauser_mode_sends_hausers_request(make_emulator, mobile: bool) -> None:
    emu = make_emulator(seed=42, start="2024-01-01", days=1, events_per_hour=10)
    ok(run_tap(config(emu, export_fields="hauser", include_mobile_fields=mobile)))
    fields = HAUSER_FIELDS + (HAUSER_MOBILE if mobile else [])
    windows = [("2024-01-01T00:00:00Z", "2024-01-01T06:00:00Z"), ("2024-01-01T06:00:00Z", END)]
    expected = [hauser_body(s, e, fields) for s, e in windows]
    sent = emu.create_bodies
    assert [json.loads(raw) for raw in sent] == expected
    assert [list(json.loads(raw)) for raw in sent] == [list(doc) for doc in expected]  # key order too
    # byte for byte: the document above, JSON-encoded as the tap always sent it (requests' encoder)
    assert sent == [json.dumps(doc).encode() for doc in expected]


def test_all_mode_sends_no_fields_and_is_the_default(make_emulator) -> None:
    emu = make_emulator(seed=43, start="2024-01-01", days=1, events_per_hour=10)
    ok(run_tap(config(emu)))
    docs = [json.loads(raw) for raw in emu.create_bodies]
    assert len(docs) == 2 and all("fields" not in d for d in docs)
    assert [{**d, "fields": HAUSER_FIELDS} for d in docs] == [
        hauser_body(d["timeRange"]["start"], d["timeRange"]["end"], HAUSER_FIELDS) for d in docs]
    assert Settings.from_config({"api_key": "k"}).export_fields == "all"
    with pytest.raises(ConfigError, match=r"^export_fields: 'some' must be 'all' or 'hauser'$"):
        Settings.from_config({"api_key": "k", "export_fields": "some"})


# ---------------------------------------------------------------- an unknown field lands in CustomVars


@pytest.mark.parametrize("c_scanner", [True, False])
def test_unknown_field_in_custom_vars_record_mode(new_org: Emulator, c_scanner: bool) -> None:
    """RECORD mode: the C RECORD writer (the fast path) and the per-record reference."""
    run = ok(run_tap(config(new_org, c_scanner=c_scanner)))
    assert [{k: r["CustomVars"][k] for k in NEW if k in r["CustomVars"]} for r in run.records] == \
        expected_new(new_org)
    assert not any(k in r for r in run.records for k in NEW)


def test_hauser_mode_never_receives_the_unknown_field(new_org: Emulator) -> None:
    run = ok(run_tap(config(new_org, export_fields="hauser")))
    assert len(run.records) == len(new_org.expected_rows(START, END))
    assert not any(k in r["CustomVars"] or k in r for r in run.records for k in NEW)


@pytest.mark.parametrize(("fmt", "c_scanner"), [("parquet", True), ("parquet", False), ("arrow", True),
                                               ("jsonl", True)])
def test_unknown_field_in_custom_vars_day_batches(new_org: Emulator, tmp_path: Path, fmt: str,
                                                  c_scanner: bool) -> None:
    compression = {"parquet": "zstd", "arrow": "zstd", "jsonl": "gzip"}[fmt]
    cfg = config(new_org, c_scanner=c_scanner,
                 batch_config={"encoding": {"format": fmt, "compression": compression},
                               "storage": {"root": f"file://{tmp_path}"}})
    run = ok(run_tap(cfg))
    [path] = [u[len("file://"):] for b in run.batches for u in b["manifest"]]
    if fmt == "parquet":
        custom = [json.loads(c) for c in pq.read_table(path, columns=["CustomVars"]).column(0).to_pylist()]
    elif fmt == "arrow":
        with pa.memory_map(path) as source:
            column = pa.ipc.open_file(source).read_all().column("CustomVars")
        custom = [json.loads(c) for c in column.to_pylist()]
    else:
        with gzip.open(path, "rt") as fh:
            custom = [json.loads(line)["CustomVars"] for line in fh]
    assert [{k: c[k] for k in NEW if k in c} for c in custom] == expected_new(new_org)
