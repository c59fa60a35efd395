"""Fidelity: hauser's own test export, served by the emulator, must give hauser's expected rows."""

from __future__ import annotations

import csv
import datetime as dt
import json

import pytest

from tap_fullstory.testing.fixtures import hauser_fixtures_dir
from tests.tapio import run_tap

WINDOWS = ["1598400000", "1598486400", "1598572800", "1598659200", "1598745600"]
INT_COLUMNS = {"IndvId", "UserId", "SessionId", "PageId"}


def hauser_config(base_url: str, **extra) -> dict:
    return {
        "api_key": "test-key",
        "api_url": base_url,
        "start_date": "2020-08-26T00:00:00Z",
        "end_date": "2020-08-31T00:00:00Z",
        "export_window": "24h",
        "poll_interval": 0.01,
        **extra,
    }


def as_instant(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def cell_matches(column: str, cell: str, value) -> bool:
    if cell == "":
        return value is None or value == ""
    if value is None:
        return False
    if column == "CustomVars":
        return json.loads(cell) == value
    if column in {"EventStart", "UserCreated", "SessionStart", "PageStart"}:
        return as_instant(cell) == as_instant(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return cell == value
    if isinstance(value, int):
        return int(cell) == value
    return float(cell) == value


@pytest.fixture(scope="module")
def segment_run(hauser_emulator):
    run = run_tap(hauser_config(hauser_emulator.base_url))
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def test_records_equal_hauser_output_cell_by_cell(segment_run) -> None:
    records = segment_run.records
    fixtures = hauser_fixtures_dir() / "groupByDay"
    offset = 0
    checked = 0
    for window in WINDOWS:
        with open(fixtures / f"{window}.csv", newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader)
            expected = list(reader)
        start = dt.datetime.fromtimestamp(int(window), dt.timezone.utc)
        got = [r for r in records if as_instant(r["ExportStart"]) == start]
        assert len(got) == len(expected), window
        for row, record in zip(expected, got, strict=True):
            for column, cell in zip(header, row, strict=True):
                assert cell_matches(column, cell, record.get(column)), (window, column, cell, record.get(column))
                checked += 1
        offset += len(got)
    assert offset == len(records) == 144
    assert checked == 144 * 59


def test_ids_and_milliseconds_survive(segment_run) -> None:
    first = segment_run.records[0]
    assert first["UserId"] == 5189870820212736
    assert first["EventStart"] == "2020-08-27T06:20:26.900Z"
    assert any(r["CustomVars"].get("evt_order.total_real") is not None for r in segment_run.records)


def test_state_is_the_end_of_the_last_window(segment_run) -> None:
    assert segment_run.bookmark() == "2020-08-31T00:00:00Z"


def test_bundles_give_the_same_rows(hauser_emulator, segment_run) -> None:
    run = run_tap(hauser_config(hauser_emulator.base_url, export_api="bundles"))
    assert run.returncode == 0, run.stderr[-3000:]
    assert len(run.records) == 144

    def comparable(record: dict) -> dict:
        drop = {"ExportStart", "ExportEnd", "EventTargetSelectorTok"}
        return {k: v for k, v in record.items() if k not in drop and v is not None}

    assert [comparable(r) for r in run.records] == [comparable(r) for r in segment_run.records]
    assert sum(1 for r in run.records if r.get("EventTargetSelectorTok")) == 68
