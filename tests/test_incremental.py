"""Incremental semantics against the emulator: bookmarks, no gaps, no duplicates, resume."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.tapio import run_tap

START = "2024-01-01T00:00:00Z"


def config(base_url: str, **extra) -> dict:
    return {
        "api_key": "test-key",
        "api_url": base_url,
        "start_date": START,
        "export_window": "6h",
        "poll_interval": 0.01,
        **extra,
    }


def ids(records: list[dict]) -> Counter:
    return Counter(r["EventId"] for r in records)


@pytest.fixture(scope="module")
def five_days(make_emulator_module):
    return make_emulator_module(start=START, days=5, events_per_hour=12, seed=3)


@pytest.fixture(scope="module")
def full_run(five_days):
    run = run_tap(config(five_days.base_url, end_date="2024-01-06T00:00:00Z"))
    assert run.returncode == 0, run.stderr[-2000:]
    return run


def test_full_run_covers_every_event_once(five_days, full_run) -> None:
    expected = five_days.expected_rows("2024-01-01T00:00:00Z", "2024-01-06T00:00:00Z")
    assert len(full_run.records) == len(expected) > 0
    assert max(ids(full_run.records).values()) == 1
    assert full_run.bookmark() == "2024-01-06T00:00:00Z"


def test_two_runs_equal_one_and_a_third_emits_nothing(five_days, full_run) -> None:
    first = run_tap(config(five_days.base_url, end_date="2024-01-04T00:00:00Z"))
    assert first.returncode == 0, first.stderr[-2000:]
    assert first.bookmark() == "2024-01-04T00:00:00Z"
    second = run_tap(config(five_days.base_url, end_date="2024-01-06T00:00:00Z"), state=first.final_state)
    assert second.returncode == 0, second.stderr[-2000:]
    assert all(r["ExportStart"] >= "2024-01-04T00:00:00Z" for r in second.records)
    combined = first.records + second.records
    assert ids(combined) == ids(full_run.records)
    assert sorted(map(sorted_items, combined)) == sorted(map(sorted_items, full_run.records))
    third = run_tap(config(five_days.base_url, end_date="2024-01-06T00:00:00Z"), state=second.final_state)
    assert third.returncode == 0
    assert third.records == []
    assert third.bookmark() == "2024-01-06T00:00:00Z"


def sorted_items(record: dict) -> str:
    record = {k: v for k, v in record.items() if k != "ExportEnd"}
    return repr(sorted(record.items()))


def test_state_after_every_window(full_run) -> None:
    """Each of the 20 windows is followed by a STATE at its end, before the next window's first
    record: none missing, none out of order."""
    ends = [f"2024-01-0{d}T{h:02d}:00:00Z" for d in range(1, 7) for h in (0, 6, 12, 18)][1:21]
    bookmark, window, after_window = None, None, []
    for message in full_run.messages:
        if message["type"] == "STATE":
            bookmark = message["value"]["bookmarks"]["events"].get("replication_key_value")
        elif message["type"] == "RECORD" and message["record"]["ExportStart"] != window:
            if window is not None:
                after_window.append(bookmark)  # the last STATE before the next window began
            window = message["record"]["ExportStart"]
    after_window.append(bookmark)
    assert after_window == ends


def test_records_come_before_the_state_that_covers_them(full_run) -> None:
    bookmark = None
    for message in full_run.messages:
        if message["type"] == "STATE":
            bookmark = message["value"]["bookmarks"]["events"].get("replication_key_value")
        elif message["type"] == "RECORD" and bookmark:
            assert message["record"]["ExportStart"] >= bookmark


def test_resume_after_a_failure_mid_window(make_emulator) -> None:
    emu = make_emulator(start=START, days=2, events_per_hour=12, seed=4)
    emu.add_fault("download", "malformed_row", nth=3, row=5)
    failed = run_tap(config(emu.base_url, end_date="2024-01-03T00:00:00Z"))
    assert failed.returncode != 0
    assert "row 5" in failed.stderr
    assert failed.bookmark() == "2024-01-01T12:00:00Z"  # two windows complete, the third not
    assert any(r["ExportStart"] == "2024-01-01T12:00:00Z" for r in failed.records)
    rerun = run_tap(config(emu.base_url, end_date="2024-01-03T00:00:00Z"), state=failed.final_state)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    expected = emu.expected_rows("2024-01-01T00:00:00Z", "2024-01-03T00:00:00Z")
    union = set(ids(failed.records)) | set(ids(rerun.records))
    assert len(union) == len(expected)
    assert max(ids(rerun.records).values()) == 1


def test_retries_exhausted_fails_cleanly(make_emulator) -> None:
    emu = make_emulator(start=START, days=1, events_per_hour=12, seed=5)
    emu.add_fault("create", "429_json", nth=2, times=50, retry_after=0)
    run = run_tap(config(emu.base_url, end_date="2024-01-02T00:00:00Z"))
    assert run.returncode != 0
    assert run.bookmark() == "2024-01-01T06:00:00Z"
    error_lines = [line for line in run.stderr.splitlines() if "ERROR" in line]
    assert error_lines and "429" in error_lines[-1]
    assert "Traceback" not in run.stderr
