"""The three symptoms of issue #20, each a test that fails on the code before the misfit rule
(only APIs that existed then: the `raw_row` fault, the CLI), so that they stay gone:

1. RECORD mode (C scanner and reference) passed "yesterday", "abc", 1.5 and "" through into
   date-time and integer columns: a validating target stopped the run;
2. Parquet wrote 1 for 1.5 in an integer column (silently) and lost the values it nulled;
3. the emulator's individuals had "Created": "" when it did not know a creation time.
"""

from __future__ import annotations

import json
import typing as t

import pyarrow.parquet as pq
import pytest
from jsonschema import Draft202012Validator
from singer_sdk.helpers._compat import datetime_fromisoformat

from tap_fullstory.fields import singer_schema
from tests.tapio import run_tap
from tests.test_batches import local, manifests, ok

ROW = {"EventStart": "2024-01-01T00:00:00.500Z", "EventType": "click", "UserCreated": "yesterday",
       "PageDuration": "abc", "PageNumErrors": 1.5, "SessionStart": ""}


@pytest.fixture(scope="module")
def served(make_emulator_module) -> dict[str, t.Any]:
    emu = make_emulator_module(seed=1, start="2024-01-01T00:00:00Z", days=1, events_per_hour=20)
    emu.add_fault("download", "raw_row", times=10**6, raw=json.dumps(ROW).encode(), row=1)
    return {"api_key": "test-key", "api_url": emu.base_url, "start_date": "2024-01-01T00:00:00Z",
            "end_date": "2024-01-01T06:00:00Z", "poll_interval": 0.01}


def problems(record: dict[str, t.Any]) -> list[str]:
    """What a target-postgres with its defaults (validate_records) would stop on."""
    schema = singer_schema(mobile=False)
    out = [e.message for e in Draft202012Validator(schema).iter_errors(record)]
    for name, prop in schema["properties"].items():
        if prop.get("format") == "date-time" and record.get(name) is not None:
            try:
                datetime_fromisoformat(record[name])
            except ValueError as exc:
                out.append(f"{name}: {exc}")
    return out


@pytest.mark.parametrize("c_scanner", [True, False])
def test_record_mode_gives_records_a_validating_target_takes(served, c_scanner) -> None:
    run = ok(run_tap({**served, "c_scanner": c_scanner}))
    assert [problems(r) for r in run.records if problems(r)] == []
    (record,) = [r for r in run.records if r["EventStart"] == ROW["EventStart"]]
    assert record["PageNumErrors"] is None and record["SessionStart"] is None
    assert {k: record["CustomVars"][k] for k in ("UserCreated", "PageDuration", "PageNumErrors")} \
        == {"UserCreated": "yesterday", "PageDuration": "abc", "PageNumErrors": 1.5}


def test_parquet_changes_nothing_silently(served, tmp_path) -> None:
    run = ok(run_tap({**served, "batch_config": {"encoding": {"format": "parquet"},
                                                 "storage": {"root": tmp_path.as_uri()}}}))
    rows = [r for url in manifests(run) for r in pq.read_table(local(url)).to_pylist()]
    (row,) = [r for r in rows if r["EventStart"].isoformat().startswith("2024-01-01T00:00:00.5")]
    assert row["PageNumErrors"] is None  # not 1
    assert json.loads(row["CustomVars"]) == {"PageDuration": "abc", "PageNumErrors": 1.5,
                                             "UserCreated": "yesterday"}


def test_emulator_individuals_have_no_empty_creation_time(make_emulator, hauser_dir) -> None:
    emu = make_emulator(rows_file=hauser_dir / "raw.json")  # its rows carry no UserCreated
    rows = emu.expected_individuals(None, None)
    assert rows and {r["Created"] for r in rows} == {None}
