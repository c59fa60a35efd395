"""Contract tests for `tap_fullstory.sdk`: one per private singer-sdk API the tap relies on.

A singer-sdk upgrade that changes what one of these does fails here, before it can break a
bookmark in a user's pipeline.
"""

from __future__ import annotations

import json
import typing as t

import pytest

from tap_fullstory import sdk
from tap_fullstory.tap import TapFullStory
from tap_fullstory.writers.record_lines import FastSingerWriter

START = "2024-01-01T00:00:00Z"
BOOKMARK = "2024-01-01T06:00:00Z"


def _tap(emulator: t.Any, state: dict | None = None, **config: t.Any) -> TapFullStory:
    return TapFullStory(config={
        "api_key": emulator.api_key, "api_url": emulator.base_url, "start_date": START,
        "end_date": "2024-01-02T00:00:00Z", "poll_interval": 0.01, **config,
    }, state=state, parse_env_config=False, validate_config=True)


class Out:
    """What the tap wrote to stdout (FastSingerWriter writes bytes to sys.stdout.buffer)."""

    def __init__(self, capture: pytest.CaptureFixture[bytes]) -> None:
        self.capture = capture
        self.text = b""

    def messages(self) -> list[dict]:
        self.text += self.capture.readouterr().out
        return [json.loads(line) for line in self.text.splitlines()]


@pytest.fixture
def stdout(capsysbinary: pytest.CaptureFixture[bytes]) -> Out:
    return Out(capsysbinary)


def _states(out: Out) -> list[dict]:
    return [m["value"] for m in out.messages() if m["type"] == "STATE"]


def test_write_starting_value_gives_the_bookmark_or_start_date(emulator) -> None:
    fresh = _tap(emulator).streams["events"]
    sdk.write_starting_value(fresh, None)
    assert fresh.get_starting_timestamp(None).isoformat() == "2024-01-01T00:00:00+00:00"
    state = {"bookmarks": {"events": {"replication_key": "ExportStart",
                                      "replication_key_value": BOOKMARK}}}
    resumed = _tap(emulator, state=state).streams["events"]
    sdk.write_starting_value(resumed, None)
    assert resumed.get_starting_timestamp(None).isoformat() == "2024-01-01T06:00:00+00:00"


def test_move_bookmark_sets_a_resumable_bookmark_and_write_state_writes_it(
        emulator, stdout) -> None:
    stream = _tap(emulator).streams["events"]
    sdk.write_starting_value(stream, None)
    sdk.move_bookmark(stream, BOOKMARK, None)
    bookmark = stream.stream_state
    assert bookmark["replication_key"] == "ExportStart"
    assert bookmark["replication_key_value"] == BOOKMARK
    assert "progress_markers" not in bookmark  # sorted stream: resumable as it is
    sdk.write_state(stream)
    states = _states(stdout)
    assert states[-1]["bookmarks"]["events"]["replication_key_value"] == BOOKMARK


def test_write_state_writes_only_what_moved(emulator, stdout) -> None:
    stream = _tap(emulator).streams["events"]
    sdk.move_bookmark(stream, BOOKMARK, None)
    sdk.write_state(stream)
    sdk.write_state(stream)
    assert len(_states(stdout)) == 1  # nothing moved: no second STATE
    sdk.move_bookmark(stream, "2024-01-01T12:00:00Z", None)
    assert len(_states(stdout)) == 1  # moving alone writes nothing
    sdk.write_state(stream)
    states = _states(stdout)
    assert [s["bookmarks"]["events"]["replication_key_value"] for s in states] == [
        BOOKMARK, "2024-01-01T12:00:00Z"]


def test_finalize_state_drops_the_interim_keys(emulator) -> None:
    stream = _tap(emulator).streams["events"]
    sdk.write_starting_value(stream, None)
    sdk.move_bookmark(stream, BOOKMARK, None)
    assert "starting_replication_value" in stream.stream_state
    sdk.finalize_state(stream)
    assert stream.stream_state == {"replication_key": "ExportStart",
                                   "replication_key_value": BOOKMARK}


def test_message_writer_is_the_taps(emulator) -> None:
    assert isinstance(sdk.message_writer(_tap(emulator).streams["events"]), FastSingerWriter)


@pytest.mark.parametrize(("config", "unchanged"), [
    ({}, True),
    ({"stream_maps": {"events": {"__alias__": "fs_events"}}}, False),
    ({"stream_maps": {"events": {"PageUrl": "__NULL__"}}}, False),
    ({"flattening_enabled": True, "flattening_max_depth": 1}, False),
])
def test_records_pass_unchanged_only_with_the_default_map(emulator, config, unchanged) -> None:
    assert sdk.records_pass_unchanged(_tap(emulator, **config).streams["events"]) is unchanged


def test_records_pass_unchanged_is_false_under_a_record_limit(emulator) -> None:
    stream = _tap(emulator).streams["events"]
    stream.ABORT_AT_RECORD_COUNT = 5
    assert not sdk.records_pass_unchanged(stream)


def test_dry_run_record_limit_is_honoured(emulator, stdout) -> None:
    """`--test`, the SDK's standard tests: max_records_limit stops the run at the limit (the
    direct RECORD path used to ignore it)."""
    tap = _tap(emulator)
    tap.run_sync_dry_run(dry_run_record_limit=7)  # selects every stream
    records = [m["stream"] for m in stdout.messages() if m["type"] == "RECORD"]
    assert {name: records.count(name) for name in set(records)} == {"events": 7, "individuals": 7}


def test_count_quarantined_logs_a_singer_counter_metric(emulator, caplog) -> None:
    """The SDK's metrics.Counter carries a metric name of the tap's own (its Metric enum lists
    only the SDK's): one METRIC line, type counter, with the value and the tags."""
    import logging

    stream = _tap(emulator).streams["events"]
    with caplog.at_level(logging.INFO, logger="singer_sdk.metrics"):
        sdk.count_quarantined(stream, 3, export_start=START, export_end=BOOKMARK)
    points = [json.loads(r.getMessage().split("METRIC: ", 1)[1]) for r in caplog.records
              if r.getMessage().startswith("METRIC: ")]
    assert len(points) == 1
    point = points[0]
    assert (point["type"], point["metric"], point["value"]) == ("counter", "quarantined_row_count", 3)
    assert point["tags"]["stream"] == "events"
    assert (point["tags"]["export_start"], point["tags"]["export_end"]) == (START, BOOKMARK)


def test_count_misfits_logs_a_singer_counter_metric_per_field(emulator, caplog) -> None:
    """The misfit rule's metric: one METRIC line per call, type counter, named
    misfit_value_count, with the values nulled, the stream, the field and the window's tags."""
    import logging

    stream = _tap(emulator).streams["events"]
    with caplog.at_level(logging.INFO, logger="singer_sdk.metrics"):
        sdk.count_misfits(stream, "PageDuration", 4, export_start=START, export_end=BOOKMARK)
    points = [json.loads(r.getMessage().split("METRIC: ", 1)[1]) for r in caplog.records
              if r.getMessage().startswith("METRIC: ")]
    assert len(points) == 1
    point = points[0]
    assert (point["type"], point["metric"], point["value"]) == ("counter", "misfit_value_count", 4)
    tags = {name: value for name, value in point["tags"].items() if name != "pid"}  # the SDK's
    assert tags == {"stream": "events", "field": "PageDuration",
                    "export_start": START, "export_end": BOOKMARK}
