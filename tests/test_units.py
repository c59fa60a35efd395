"""Unit tests of the pure parts: windows, settings, field split, decoding, EventId."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import orjson
import pytest

from tap_fullstory.fields import STANDARD_FIELDS, Splitter, normalize_timestamp, singer_schema
from tap_fullstory.keys import EventKeyer, OutOfOrderError
from tap_fullstory.settings import Settings
from tap_fullstory.sources.decode import MalformedExportError, TruncatedExportError, iter_rows
from tap_fullstory.windows import (
    ConfigError,
    Window,
    export_limit,
    fmt,
    parse_duration,
    plan_windows,
)

UTC = dt.timezone.utc
H = dt.timedelta(hours=1)


def ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- windows -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("15m", dt.timedelta(minutes=15)), ("1h30m", dt.timedelta(minutes=90)),
     ("24h", dt.timedelta(days=1)), (3600, H)],
)
def test_window_lengths_parse(text, expected) -> None:
    """Settings such as export_window take Go-style lengths (not a timing check)."""
    parsed = parse_duration(text, "x")
    assert parsed == expected
    with pytest.raises(ConfigError, match="export_window"):
        parse_duration("six hours", "export_window")


def test_windows_are_utc_aligned_with_short_first_and_last() -> None:
    windows = plan_windows(ts("2024-01-01T10:20:00"), 6 * H, limit=ts("2024-01-02T03:00:00"))
    assert [(fmt(w.start), fmt(w.end)) for w in windows] == [
        ("2024-01-01T10:20:00Z", "2024-01-01T12:00:00Z"),
        ("2024-01-01T12:00:00Z", "2024-01-01T18:00:00Z"),
        ("2024-01-01T18:00:00Z", "2024-01-02T00:00:00Z"),
        ("2024-01-02T00:00:00Z", "2024-01-02T03:00:00Z"),
    ]
    last_instants = [w.end - dt.timedelta(microseconds=1) for w in windows]
    assert all(w.start.date() == last.date() for w, last in zip(windows, last_instants, strict=True))


def test_export_limit_respects_delay_and_end_date() -> None:
    now = ts("2024-01-10T13:37:00")
    assert export_limit(now, 24 * H, None, 6 * H) == ts("2024-01-09T12:00:00")
    assert export_limit(now, 24 * H, ts("2024-01-05T01:00:00"), 6 * H) == ts("2024-01-05T01:00:00")


def test_no_window_before_it_has_settled() -> None:
    assert plan_windows(ts("2024-01-09T12:00:00"), 6 * H, limit=ts("2024-01-09T12:00:00")) == []


# --- settings ------------------------------------------------------------------------------

BASE = {"api_key": "k", "start_date": "2024-01-01T00:00:00Z"}


@pytest.mark.parametrize(
    ("override", "setting"),
    [
        ({"api_key": ""}, "api_key"),
        ({"export_window": "7h"}, "export_window"),
        ({"export_window": "10m"}, "export_window"),
        ({"export_window": "2d"}, "export_window"),
        ({"export_delay": "30m"}, "export_delay"),
        ({"end_date": "2023-12-31T00:00:00Z"}, "end_date"),
        ({"api_url": "api.fullstory.com"}, "api_url"),
        ({"api_url": "ftp://x"}, "api_url"),
        ({"start_date": "yesterday"}, "start_date"),
        ({"export_api": "v2"}, "export_api"),
        ({"poll_interval": 0}, "poll_interval"),
        ({"max_pending_exports": 0}, "max_pending_exports"),
        ({"max_pending_exports": 17}, "max_pending_exports"),
        ({"max_pending_exports": 2.5}, "max_pending_exports"),
        ({"max_pending_exports": True}, "max_pending_exports"),
    ],
)
def test_invalid_settings_name_the_setting(override: dict, setting: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_config({**BASE, **override})
    message = str(info.value)
    assert message.startswith(f"{setting}:")
    assert "\n" not in message


def test_settings_defaults() -> None:
    now = ts("2024-03-15T10:00:00")
    s = Settings.from_config({"api_key": "k"}, now=now)
    assert s.start_date == ts("2024-02-14T00:00:00")
    assert s.api_url == "https://api.fullstory.com"
    assert s.export_window == 6 * H and s.export_delay == 24 * H
    assert s.max_pending_exports == 4
    assert Settings.from_config({"api_key": "k", "export_api": "bundles"}).api_url == "https://export.fullstory.com"


# --- fields --------------------------------------------------------------------------------


def test_schema_types_follow_the_catalogue() -> None:
    props = singer_schema(mobile=True)["properties"]
    assert props["UserId"]["type"] == ["integer", "null"]
    assert props["EventStart"] == {"type": ["string", "null"], "format": "date-time"}
    assert props["EventCumulativeLayoutShift"]["type"] == ["number", "null"]
    assert props["PageAgent"]["type"] == ["string", "null"]
    assert "AppViewName" in props and "AppViewName" not in singer_schema(mobile=False)["properties"]
    assert props["CustomVars"]["type"] == ["object", "null"]
    assert len(STANDARD_FIELDS) == 58


def test_split_is_case_insensitive_and_keeps_custom_values_verbatim() -> None:
    row = {
        "pageurl": "https://x", "UserId": 9007199254740993, "evt_order.total_real": 8.0,
        "evt_n_int": 2, "user_tags_strs": ["a", "b"], "NewFullStoryField": {"x": 1}, "CustomVars": "?",
    }
    cols, custom = Splitter(mobile=False).split(row)
    assert cols == {"PageUrl": "https://x", "UserId": 9007199254740993}
    assert custom == {
        "evt_order.total_real": 8.0, "evt_n_int": 2, "user_tags_strs": ["a", "b"],
        "NewFullStoryField": {"x": 1}, "CustomVars": "?",
    }
    assert type(custom["evt_n_int"]) is int


def test_mobile_fields_are_columns_only_when_enabled() -> None:
    assert "AppName" in Splitter(mobile=True).split({"AppName": "x"})[0]
    assert Splitter(mobile=False).split({"AppName": "x"})[1] == {"AppName": "x"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2020-08-27T06:20:26.900Z", "2020-08-27T06:20:26.900Z"),
        ("2020-08-27T06:20:26.9Z", "2020-08-27T06:20:26.900Z"),
        ("2020-08-27T08:20:26.913+02:00", "2020-08-27T06:20:26.913Z"),
        ("2020-08-27T06:20:26Z", "2020-08-27T06:20:26.000Z"),
        ("2020-08-27T06:20:26.123456Z", "2020-08-27T06:20:26.123456Z"),
        ("not a time", "not a time"),
    ],
)
def test_timestamps_normalised_keeping_milliseconds(raw: str, expected: str) -> None:
    assert normalize_timestamp(raw) == expected


# --- decode --------------------------------------------------------------------------------

ROWS = [
    {"EventStart": "2024-01-01T00:00:00.000Z", "EventTargetText": 'a},{"b":1},{ "x', "n": 1},
    {"EventStart": "2024-01-01T00:00:01.000Z", "arr": [{"q": 1}, {"q": 2}], "t": "é\n,\""},
    {"EventStart": "2024-01-01T00:00:02.000Z", "UserId": 9223372036854775807},
]


def write(tmp_path: Path, data: bytes, name: str = "body") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize(
    "encode",
    [
        lambda rows: gzip.compress(orjson.dumps(rows)),
        lambda rows: gzip.compress(json.dumps(rows, indent=2).encode()),
        lambda rows: gzip.compress(b"[" + b",\n".join(orjson.dumps(r) for r in rows) + b"]\n"),
        lambda rows: gzip.compress(b"\n".join(orjson.dumps(r) for r in rows) + b"\n"),
        lambda rows: gzip.compress(gzip.compress(orjson.dumps(rows))),  # transport + file gzip
        lambda rows: orjson.dumps(rows),  # proxy already gunzipped
    ],
    ids=["compact-array", "pretty-array", "line-array", "ndjson", "double-gzip", "plain"],
)
def test_decode_layouts(tmp_path: Path, encode) -> None:
    assert list(iter_rows(write(tmp_path, encode(ROWS)))) == ROWS


def test_decode_empty_array(tmp_path: Path) -> None:
    assert list(iter_rows(write(tmp_path, gzip.compress(b" [ ] ")))) == []


def test_decode_malformed_row_is_located(tmp_path: Path) -> None:
    body = orjson.dumps(ROWS)[:-1] + b',{"EventStart": oops},' + orjson.dumps(ROWS)[1:]
    with pytest.raises(MalformedExportError, match="row 4 "):
        list(iter_rows(write(tmp_path, gzip.compress(body))))
    ndjson = b"\n".join(orjson.dumps(r) for r in ROWS) + b"\n{broken\n"
    with pytest.raises(MalformedExportError, match="row 4 "):
        list(iter_rows(write(tmp_path, gzip.compress(ndjson))))


def test_decode_truncated_gzip(tmp_path: Path) -> None:
    data = gzip.compress(orjson.dumps(ROWS * 200))
    with pytest.raises(TruncatedExportError):
        list(iter_rows(write(tmp_path, data[: len(data) // 2])))


def test_decode_skip(tmp_path: Path) -> None:
    assert list(iter_rows(write(tmp_path, gzip.compress(orjson.dumps(ROWS))), skip=2)) == ROWS[2:]


# --- EventId -------------------------------------------------------------------------------


def test_event_ids_are_stable_and_distinct_for_true_repeats() -> None:
    rows = [
        {"UserId": 1, "SessionId": 2, "PageId": 3, "EventStart": "2024-01-01T00:00:00.000Z", "EventType": "click"},
        {"UserId": 1, "SessionId": 2, "PageId": 3, "EventStart": "2024-01-01T00:00:00.000Z", "EventType": "click"},
        {"UserId": 1, "SessionId": 2, "PageId": 3, "EventStart": "2024-01-01T00:00:01.000Z", "EventType": "click",
         "PageDuration": 5},
    ]
    first = [EventKeyer().key(r) for r in rows[:1]]
    keyer = EventKeyer()
    ids = [keyer.key(r) for r in rows]
    assert ids[0] == first[0]
    assert len(set(ids)) == 3
    again = EventKeyer()
    settled = [dict(r, PageDuration=999, IndvId=7) for r in rows]  # late-settling values
    assert [again.key(r) for r in settled] == ids
    whole = EventKeyer(whole_window=True)
    assert [whole.key(r) for r in rows] == ids


def test_out_of_order_rows_are_detected() -> None:
    keyer = EventKeyer()
    keyer.key({"EventStart": "2024-01-01T00:00:01.000Z"})
    with pytest.raises(OutOfOrderError):
        keyer.key({"EventStart": "2024-01-01T00:00:00.000Z"})


def test_window_label() -> None:
    assert Window(ts("2024-01-01T00:00:00"), ts("2024-01-01T06:00:00")).label == (
        "[2024-01-01T00:00:00Z, 2024-01-01T06:00:00Z)"
    )


@pytest.mark.parametrize(
    ("export_api", "base"),
    [("segment_export", "https://api.fullstory.com"), ("bundles", "https://export.fullstory.com")],
)
def test_http_uses_validated_settings_with_their_defaults(export_api: str, base: str) -> None:
    """No api_url in the config: each source's documented default, not a KeyError."""
    from tap_fullstory.tap import TapFullStory

    stream = TapFullStory(config={"api_key": " k ", "export_api": export_api}).streams["events"]
    assert stream.url_base == base
    assert stream.authenticator.auth_headers == {"Authorization": "Basic k"}
    assert stream.timeout == 300
