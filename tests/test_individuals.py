"""The `individuals` stream (issue #14): the emulator's TYPE_INDIVIDUAL exports, then the tap over them.

The emulator's individuals are checked against its own events export, recomputed here independently; the
tap's records are then checked against the emulator's rows (typed columns, user vars in CustomVars).
"""

from __future__ import annotations

import copy
import gzip
import json
import typing as t
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests

from tap_fullstory.fields import INDIVIDUAL_FIELDS
from tap_fullstory.tap import TapFullStory
from tap_fullstory.testing import Emulator
from tests.tapio import TapRun, run_tap
from tests.test_emulator import AUTH, body, export

ORG = "2024-01-01T00:00:00Z"  # organisation start
START, MID, END = "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z", "2024-01-03T00:00:00Z"
KNOWN = [name for name, _ in INDIVIDUAL_FIELDS]


def individuals_body(start: str, end: str, fields: list[str] | None = None, fmt: str = "FORMAT_NDJSON") -> dict:
    return body(start, end, fields, fmt, type="TYPE_INDIVIDUAL")


def ndjson(text: bytes) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def recompute(events: list[dict], active: set) -> dict[int, dict]:
    """Counts and last-* values per individual from raw events (in EventStart order)."""
    out: dict[int, dict] = {}
    sessions: dict[int, set] = defaultdict(set)
    pages: dict[int, set] = defaultdict(set)
    for e in events:
        i = e["IndvId"]
        if i not in active:
            continue
        sessions[i].add((e["UserId"], e["SessionId"]))
        pages[i].add((e["UserId"], e["SessionId"], e["PageId"]))
        row = out.setdefault(i, {"NumEvents": 0})
        row["NumEvents"] += 1
        # unknown text ("" in events) is null for an individual
        row.update(LastEventStart=e["EventStart"], LastPage=e["PageUrl"] or None,
                   LastBrowser=e["PageBrowser"] or None, Email=e["UserEmail"] or None,
                   Uid=e["UserAppKey"] or None)
        row.update({k: v for k, v in e.items() if k.startswith("user_")})
    for i, row in out.items():
        row["NumSessions"], row["NumPages"] = len(sessions[i]), len(pages[i])
    return out


# ---------------------------------------------------------------- the emulator


def test_emulator_individuals_agree_with_its_events(emulator: Emulator) -> None:
    text, response = export(emulator, individuals_body(MID, END))
    assert response.headers["Content-Disposition"].endswith('.ndjson.gz"')
    rows = ndjson(text)
    active = {e["IndvId"] for e in emulator.expected_rows(MID, END)}
    assert {r["IndvId"] for r in rows} == active and len(rows) == len(active) > 10
    # values as of the range end: every event of the individual before END, not only those in range
    expected = recompute(emulator.expected_rows(ORG, END), active)
    for row in rows:
        assert set(KNOWN) <= set(row), set(KNOWN) - set(row)
        assert {k: row[k] for k in expected[row["IndvId"]]} == expected[row["IndvId"]]
        assert row["NumSessions"] <= row["NumPages"] <= row["NumEvents"]
        assert row["ActiveSec"] <= row["TotalSec"] and row["MaxSessionSec"] <= row["TotalSec"]
        assert row["LastSessionStart"] <= row["LastEventStart"] < END
        assert row["AvgSessionSec"] == round(row["TotalSec"] / row["NumSessions"], 2)
    assert not [(r["IndvId"], k) for r in rows for k, v in r.items() if v == ""]  # null, never ""
    assert any(r["Email"] is None for r in rows)
    assert any(r["NumEvents"] > sum(1 for e in emulator.expected_rows(MID, END) if e["IndvId"] == r["IndvId"])
               for r in rows), "no individual had events before the range: the 'as of end' rule is untested"
    assert rows == emulator.expected_individuals(MID, END)


def test_emulator_individuals_fields_formats_and_auth(emulator: Emulator) -> None:
    some = ["IndvId", "NumEvents", "LastEventStart", "user_*"]
    rows = ndjson(export(emulator, individuals_body(START, MID, some))[0])
    assert rows and all(set(r) - {"IndvId", "NumEvents", "LastEventStart"} <= {
        k for k in r if k.startswith("user_")} for r in rows)
    assert any(k.startswith("user_") for r in rows for k in r)
    # no fields = FullStory's default set plus every custom variable
    everything = ndjson(export(emulator, individuals_body(START, MID, []))[0])
    assert everything == ndjson(export(emulator, individuals_body(START, MID))[0])
    assert all(set(KNOWN) <= set(r) for r in everything)
    as_json = json.loads(export(emulator, individuals_body(START, MID, fmt="FORMAT_JSON"))[0])
    assert as_json == everything
    header = export(emulator, individuals_body(START, MID, fmt="FORMAT_CSV"))[0].decode().splitlines()[0]
    assert set(KNOWN) <= set(header.split(","))
    r = requests.post(f"{emulator.base_url}/segments/v1/exports", json=individuals_body(START, MID), timeout=10)
    assert r.status_code == 401
    assert requests.post(f"{emulator.base_url}/segments/v1/exports", json=individuals_body(START, MID),
                         headers=AUTH, timeout=10).status_code == 200


def test_emulator_individuals_are_deterministic_per_seed(make_emulator) -> None:
    a, b, c = (make_emulator(seed=s, start="2024-01-01", days=1, events_per_hour=20) for s in (5, 5, 6))
    one = export(a, individuals_body(START, MID))[0]
    assert one == export(b, individuals_body(START, MID))[0]
    assert one != export(c, individuals_body(START, MID))[0]


# ---------------------------------------------------------------- the tap


def tap_config(emu: Emulator, **extra: t.Any) -> dict[str, t.Any]:
    return {"api_key": "test-key", "api_url": emu.base_url, "start_date": START, "end_date": END,
            "export_window": "6h", "poll_interval": 0.01, **extra}


def catalog(config: dict, *streams: str) -> dict:
    """The discovered catalog with exactly `streams` selected."""
    cat = copy.deepcopy(TapFullStory(config=config, parse_env_config=False).catalog_dict)
    for stream in cat["streams"]:
        for entry in stream["metadata"]:
            if entry["breadcrumb"] == []:
                entry["metadata"]["selected"] = stream["tap_stream_id"] in streams
    return cat


def ok(run: TapRun) -> TapRun:
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def of(run: TapRun, stream: str) -> list[dict]:
    return [m["record"] for m in run.messages if m["type"] == "RECORD" and m["stream"] == stream]


def bookmarks(run: TapRun) -> dict[str, str]:
    return {k: v["replication_key_value"] for k, v in (run.final_state or {})["bookmarks"].items()}


def as_record(row: dict, start: str, end: str) -> dict:
    """What the tap must make of one emulator row: known fields as columns, the rest in CustomVars."""
    record = {k: v for k, v in row.items() if k in KNOWN}
    record["CustomVars"] = {k: v for k, v in sorted(row.items()) if k not in KNOWN}
    record.update(ExportStart=start, ExportEnd=end)
    return record


def created_types(emu: Emulator) -> list[str]:
    return [json.loads(b)["type"] for b in emu.create_bodies]


@pytest.fixture(scope="module")
def org(make_emulator_module) -> Emulator:
    return make_emulator_module(seed=31, start="2024-01-01", days=3, events_per_hour=25, users=40)


def test_individuals_only_one_export_typed_and_rerun_exports_nothing(org: Emulator) -> None:
    org.create_bodies.clear()
    config = tap_config(org)
    run = ok(run_tap(config, catalog=catalog(config, "individuals")))
    assert of(run, "events") == []
    records = of(run, "individuals")
    expected = [as_record(r, START, END) for r in org.expected_individuals(START, END)]
    assert sorted(records, key=lambda r: r["IndvId"]) == expected
    assert len({r["IndvId"] for r in records}) == len(records) > 20
    assert any(r["CustomVars"] for r in records) and all(
        k.startswith("user_") for r in records for k in r["CustomVars"])
    schema = next(m["schema"] for m in run.messages if m["type"] == "SCHEMA" and m["stream"] == "individuals")
    key = next(m["key_properties"] for m in run.messages if m["type"] == "SCHEMA" and m["stream"] == "individuals")
    assert key == ["IndvId"] and schema["properties"]["IndvId"]["type"] == ["integer"]
    assert schema["properties"]["LastEventStart"]["format"] == "date-time"
    assert schema["properties"]["TotalSec"]["type"] == ["number", "null"]
    assert bookmarks(run) == {"individuals": END}
    # ONE export for the whole range, of individuals only, without a fields list (export_fields: all)
    assert [json.loads(b) for b in org.create_bodies] == [
        individuals_body(START, END) | {"format": "FORMAT_NDJSON"}]
    # A rerun from the state exports nothing and emits no record.
    again = ok(run_tap(config, catalog=catalog(config, "individuals"), state=run.final_state))
    assert of(again, "individuals") == [] and len(org.create_bodies) == 1
    assert bookmarks(again) == {"individuals": END}


def test_the_next_range_brings_fresh_values_for_active_individuals(org: Emulator) -> None:
    """Two runs: [START, MID) then [MID, END). Upserting the second over the first per IndvId gives
    exactly the individuals of [START, END) with their values as of END."""
    first_cfg, second_cfg = tap_config(org, end_date=MID), tap_config(org)
    first = ok(run_tap(first_cfg, catalog=catalog(first_cfg, "individuals")))
    second = ok(run_tap(second_cfg, catalog=catalog(second_cfg, "individuals"), state=first.final_state))
    table = {r["IndvId"]: r for r in of(first, "individuals")}
    table.update({r["IndvId"]: r for r in of(second, "individuals")})
    whole = {r["IndvId"]: r for r in of(ok(run_tap(second_cfg, catalog=catalog(second_cfg, "individuals"))),
                                        "individuals")}
    assert table.keys() == whole.keys()
    stale = [i for i in table if i not in {r["IndvId"] for r in of(second, "individuals")}]
    for i, row in table.items():
        drop = ("ExportStart", "ExportEnd")
        assert {k: v for k, v in row.items() if k not in drop} == {
            k: v for k, v in whole[i].items() if k not in drop}, i
    assert stale, "every individual was active in both ranges: nothing shows that old rows stay valid"
    updated = [i for i in table if i in {r["IndvId"] for r in of(first, "individuals")} and i not in stale]
    assert updated and any(
        next(r for r in of(first, "individuals") if r["IndvId"] == i)["NumEvents"] < table[i]["NumEvents"]
        for i in updated), "no individual's values changed between the runs"


def test_catalog_selects_each_stream(org: Emulator) -> None:
    config = tap_config(org, end_date=MID)
    org.create_bodies.clear()
    default = ok(run_tap(config))  # no catalog: individuals is opt-in
    assert of(default, "events") and not of(default, "individuals")
    assert set(created_types(org)) == {"TYPE_EVENT"} and bookmarks(default) == {"events": MID}
    org.create_bodies.clear()
    events = ok(run_tap(config, catalog=catalog(config, "events")))
    assert len(of(events, "events")) == len(org.expected_rows(START, MID)) and not of(events, "individuals")
    assert set(created_types(org)) == {"TYPE_EVENT"}
    org.create_bodies.clear()
    both = ok(run_tap(config, catalog=catalog(config, "events", "individuals")))
    assert len(of(both, "events")) == len(org.expected_rows(START, MID))
    assert len(of(both, "individuals")) == len(org.expected_individuals(START, MID))
    assert created_types(org).count("TYPE_INDIVIDUAL") == 1
    assert bookmarks(both) == {"events": MID, "individuals": MID}


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_individuals_batch_is_one_file_per_run(org: Emulator, tmp_path: Path, fmt: str) -> None:
    config = tap_config(org, batch_config={"encoding": {"format": fmt, "compression": "gzip"},
                                           "storage": {"root": f"file://{tmp_path}", "prefix": "fs-"}})
    run = ok(run_tap(config, catalog=catalog(config, "individuals")))
    urls = [u for m in run.batches for u in m["manifest"]]
    assert len(urls) == 1 and Path(urls[0][len("file://"):]).name.startswith("fs-individuals-2024-01-01-")
    assert of(run, "individuals") == [] and bookmarks(run) == {"individuals": END}
    path = urls[0][len("file://"):]
    expected = [as_record(r, START, END) for r in org.expected_individuals(START, END)]
    if fmt == "parquet":
        table = pq.read_table(path)
        types = dict(zip(table.schema.names, table.schema.types, strict=True))
        assert types["IndvId"] == pa.int64() and types["NumEvents"] == pa.int64()
        assert types["TotalSec"] == pa.float64() and pa.types.is_timestamp(types["LastEventStart"])
        rows = table.to_pylist()
        assert [r["IndvId"] for r in rows] == [r["IndvId"] for r in expected]
        assert [json.loads(r["CustomVars"]) for r in rows] == [r["CustomVars"] for r in expected]
        assert [r["NumEvents"] for r in rows] == [r["NumEvents"] for r in expected]
        assert [r["LastEventStart"].isoformat(timespec="milliseconds").replace("+00:00", "Z") for r in rows] == [
            r["LastEventStart"] for r in expected]
    else:
        with gzip.open(path, "rt") as fh:
            assert [json.loads(line) for line in fh] == expected


def test_individuals_survive_the_same_faults_as_events(make_emulator) -> None:
    emu = make_emulator(seed=32, start="2024-01-01", days=1, events_per_hour=30)
    emu.add_fault("create", "429_json", nth=1, retry_after=0)
    emu.add_fault("download", "truncated_gzip", nth=1)
    emu.add_fault("operation", "503", nth=1, retry_after=0)
    config = tap_config(emu, end_date=MID)
    run = ok(run_tap(config, catalog=catalog(config, "individuals")))
    assert sorted(f["kind"] for f in emu.stats()["faults"]) == ["429_json", "503", "truncated_gzip"]
    assert sorted(of(run, "individuals"), key=lambda r: r["IndvId"]) == [
        as_record(r, START, MID) for r in emu.expected_individuals(START, MID)]


def test_individuals_with_bundles_fail_in_one_line(make_emulator) -> None:
    emu = make_emulator(seed=33, start="2024-01-01", days=1, events_per_hour=10)
    config = tap_config(emu, export_api="bundles", end_date=MID)
    run = run_tap(config, catalog=catalog(config, "individuals"))
    errors = [line for line in run.stderr.splitlines() if "| ERROR" in line]
    assert run.returncode == 1 and len(errors) == 1, run.stderr[-2000:]
    assert "export_api=bundles" in errors[0] and "Traceback" not in run.stderr
