"""The legacy Data Export bundles source (export_api: bundles) against the emulator."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

from tests.tapio import run_tap

START = "2024-01-01T00:00:00Z"


def config(base_url: str, **extra) -> dict:
    return {"api_key": "test-key", "api_url": base_url, "export_api": "bundles", "start_date": START, **extra}


def ids(records: list[dict]) -> Counter:
    return Counter(r["EventId"] for r in records)


def iso(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def hourly(make_emulator_module):
    """48 one-hour bundles: more than two pages of 20."""
    return make_emulator_module(start=START, days=2, events_per_hour=6, seed=11, bundle_hours=1)


@pytest.fixture(scope="module")
def full_run(hourly):
    run = run_tap(config(hourly.base_url, end_date="2024-01-03T00:00:00Z"))
    assert run.returncode == 0, run.stderr[-2000:]
    return run


def test_pages_across_more_than_20_bundles(hourly, full_run) -> None:
    bundles = hourly.bundles()
    assert len(bundles) == 48
    assert hourly.stats()["requests"]["list"] >= 3
    expected = hourly.expected_rows(START, "2024-01-03T00:00:00Z")
    assert len(full_run.records) == len(expected) > 0
    assert max(ids(full_run.records).values()) == 1
    # ExportStart/ExportEnd are each bundle's Start/Stop; one STATE per bundle, at its Stop.
    spans = {(r["ExportStart"], r["ExportEnd"]) for r in full_run.records}
    assert spans <= {(iso(b["Start"]), iso(b["Stop"])) for b in bundles}
    bookmarks = [s["bookmarks"]["events"].get("replication_key_value") for s in full_run.states]
    assert {iso(b["Stop"]) for b in bundles} <= set(bookmarks)
    assert full_run.bookmark() == "2024-01-03T00:00:00Z"


def test_legacy_names_keep_their_own_columns(full_run) -> None:
    record = full_run.records[0]
    assert record.get("PageAgent") and record.get("PageUserAgent") is None
    assert any(r.get("EventTargetSelectorTok") for r in full_run.records)
    assert all(r.get("EventTargetSelector") is None for r in full_run.records)


def test_incremental_two_runs_equal_one_and_third_is_empty(hourly, full_run) -> None:
    first = run_tap(config(hourly.base_url, end_date="2024-01-01T13:00:00Z"))
    assert first.returncode == 0 and first.bookmark() == "2024-01-01T13:00:00Z"
    second = run_tap(config(hourly.base_url, end_date="2024-01-03T00:00:00Z"), state=first.final_state)
    assert second.returncode == 0
    assert ids(first.records + second.records) == ids(full_run.records)
    third = run_tap(config(hourly.base_url, end_date="2024-01-03T00:00:00Z"), state=second.final_state)
    assert third.returncode == 0 and third.records == []


def test_export_delay_applies_to_bundle_stop(make_emulator) -> None:
    now = dt.datetime.now(dt.timezone.utc).replace(minute=0, second=0, microsecond=0)
    start = now - dt.timedelta(hours=30)
    emu = make_emulator(start=start.strftime("%Y-%m-%dT%H:%M:%SZ"), days=2, events_per_hour=2, seed=12, bundle_hours=6)
    run = run_tap(config(emu.base_url, start_date=start.strftime("%Y-%m-%dT%H:%M:%SZ"), export_delay="24h"))
    assert run.returncode == 0, run.stderr[-2000:]
    settled = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=24)
    # [start, settled] spans 6 h: exactly one bundle stops inside it, and it alone is exported, whole
    stops = [b["Stop"] for b in emu.bundles() if start.timestamp() < b["Stop"] <= settled.timestamp()]
    assert len(stops) == 1
    stop = dt.datetime.fromtimestamp(stops[0], dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert run.bookmark() == stop
    assert len(run.records) == len(emu.expected_rows(start.strftime("%Y-%m-%dT%H:%M:%SZ"), stop)) > 0
    assert all(r["ExportEnd"] == stop for r in run.records)


def test_resume_after_a_failed_bundle(make_emulator) -> None:
    emu = make_emulator(start=START, days=1, events_per_hour=6, seed=13, bundle_hours=6)
    emu.add_fault("get", "malformed_row", nth=3, row=4)
    failed = run_tap(config(emu.base_url, end_date="2024-01-02T00:00:00Z"))
    assert failed.returncode != 0 and "row 4" in failed.stderr
    assert failed.bookmark() == "2024-01-01T12:00:00Z"
    rerun = run_tap(config(emu.base_url, end_date="2024-01-02T00:00:00Z"), state=failed.final_state)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    union = set(ids(failed.records)) | set(ids(rerun.records))
    assert len(union) == len(emu.expected_rows(START, "2024-01-02T00:00:00Z"))


def test_rate_limit_is_waited_out(make_emulator) -> None:
    # FullStory allows 2 downloads per minute; the emulator's window is shortened to 2 s.
    emu = make_emulator(start=START, days=1, events_per_hour=4, seed=14, bundle_hours=4,
                        rate_limit_per_minute=2, rate_limit_window=2)
    run = run_tap(config(emu.base_url, end_date="2024-01-02T00:00:00Z"))
    assert run.returncode == 0, run.stderr[-2000:]
    assert emu.stats()["rate_limited"] >= 1
    assert "Retrying in" in run.stderr and "429" in run.stderr
    assert len(run.records) == len(emu.expected_rows(START, "2024-01-02T00:00:00Z"))


def test_gzip_transfer_encoding_gives_the_same_rows(make_emulator) -> None:
    plain = make_emulator(start=START, days=1, events_per_hour=4, seed=15)
    encoded = make_emulator(start=START, days=1, events_per_hour=4, seed=15, bundle_content_encoding=True)
    a = run_tap(config(plain.base_url, end_date="2024-01-02T00:00:00Z"))
    b = run_tap(config(encoded.base_url, end_date="2024-01-02T00:00:00Z"))
    assert a.returncode == b.returncode == 0
    assert a.records and [r["EventId"] for r in a.records] == [r["EventId"] for r in b.records]
