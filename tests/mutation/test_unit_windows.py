"""windows.py, exactly: durations, timestamps, the bookmark format, alignment, the plan, the limit."""

from __future__ import annotations

import datetime as dt

import pytest

from tap_fullstory.windows import (
    ConfigError,
    Window,
    export_limit,
    floor_to,
    fmt,
    parse_datetime,
    parse_duration,
    plan_windows,
    validate_window,
)

UTC = dt.timezone.utc
H = dt.timedelta(hours=1)


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(("value", "seconds"), [
    (90, 90), (1.5, 1.5), ("90", 90), (" 2.5 ", 2.5), ("15m", 900), ("1h30m", 5400), ("1.5h", 5400),
    ("250ms", 0.25), ("1d", 86400), ("2H", 7200), ("10s", 10),
])
def test_parse_duration(value, seconds) -> None:
    assert parse_duration(value, "x") == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize("value", ["", "h", "5x", "1h 30m", "-1h", "1hh", "m5", True])
def test_parse_duration_refuses(value) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_duration(value, "poll_timeout")
    assert str(caught.value) == (f"poll_timeout: {value!r} is not a duration (examples: '15m', "
                                 "'6h', '24h')")


@pytest.mark.parametrize(("value", "expected"), [
    ("2024-01-31T10:00:00Z", "2024-01-31T10:00:00Z"), ("2024-01-31t10:00:00z", "2024-01-31T10:00:00Z"),
    ("2024-01-31", "2024-01-31T00:00:00Z"), (" 2024-01-31T12:00:00+02:00 ", "2024-01-31T10:00:00Z"),
    ("2024-01-31T10:00:00", "2024-01-31T10:00:00Z"),
    (dt.datetime(2024, 1, 31, 10), "2024-01-31T10:00:00Z"),
    (dt.datetime(2024, 1, 31, 10, tzinfo=dt.timezone(dt.timedelta(hours=-1))), "2024-01-31T11:00:00Z"),
])
def test_parse_datetime(value, expected) -> None:
    parsed = parse_datetime(value, "start_date")
    assert fmt(parsed) == expected and parsed.tzinfo == UTC


def test_parse_datetime_refuses() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_datetime("yesterday", "start_date")
    assert str(caught.value) == ("start_date: 'yesterday' is not an RFC 3339 timestamp (example: "
                                 "2024-01-31T00:00:00Z)")


def test_fmt_is_utc_whole_seconds() -> None:
    moment = dt.datetime(2024, 3, 1, 1, 2, 3, 999_999, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert fmt(moment) == "2024-02-29T23:02:03Z"


def test_floor_to() -> None:
    assert floor_to(at("2024-01-01T10:20:00"), 6 * H) == at("2024-01-01T06:00:00")
    assert floor_to(at("2024-01-01T06:00:00"), 6 * H) == at("2024-01-01T06:00:00")
    assert floor_to(at("1969-12-31T23:00:00"), 6 * H) == at("1969-12-31T18:00:00")


@pytest.mark.parametrize("minutes", [15, 30, 60, 360, 480, 1440])
def test_validate_window_accepts(minutes) -> None:
    assert validate_window(dt.timedelta(minutes=minutes)) == dt.timedelta(minutes=minutes)


@pytest.mark.parametrize(("minutes", "why"), [
    (14, "must be between 15m and 24h"), (1441, "must be between 15m and 24h"),
    (2880, "must be between 15m and 24h"),
    (420, "must divide 24h evenly (e.g. 15m, 1h, 6h, 24h)"), (25, "must divide 24h evenly"),
])
def test_validate_window_refuses(minutes, why) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_window(dt.timedelta(minutes=minutes))
    assert str(caught.value).startswith(f"export_window: {dt.timedelta(minutes=minutes)} {why}")


def test_window_label_and_day() -> None:
    w = Window(at("2024-01-01T18:00:00"), at("2024-01-02T00:00:00"), bundle_id=7)
    assert w.label == "[2024-01-01T18:00:00Z, 2024-01-02T00:00:00Z)"
    assert w.day == dt.date(2024, 1, 1) and w.bundle_id == 7
    assert Window(w.start, w.end).bundle_id is None


def test_plan_windows() -> None:
    plan = plan_windows(at("2024-01-01T10:20:00"), 6 * H, limit=at("2024-01-02T03:00:00"))
    assert [(fmt(w.start), fmt(w.end)) for w in plan] == [
        ("2024-01-01T10:20:00Z", "2024-01-01T12:00:00Z"),
        ("2024-01-01T12:00:00Z", "2024-01-01T18:00:00Z"),
        ("2024-01-01T18:00:00Z", "2024-01-02T00:00:00Z"),
        ("2024-01-02T00:00:00Z", "2024-01-02T03:00:00Z")]
    assert plan_windows(at("2024-01-01T06:00:00"), 6 * H, limit=at("2024-01-01T12:00:00")) == [
        Window(at("2024-01-01T06:00:00"), at("2024-01-01T12:00:00"))]
    assert plan_windows(at("2024-01-01T06:00:00"), 6 * H, limit=at("2024-01-01T06:00:00")) == []
    assert plan_windows(at("2024-01-01T07:00:00"), 6 * H, limit=at("2024-01-01T06:00:00")) == []


def test_export_limit() -> None:
    now = at("2024-01-03T10:20:00")
    assert export_limit(now, 24 * H, None, 6 * H) == at("2024-01-02T06:00:00")
    assert export_limit(now, 0 * H, None, H) == at("2024-01-03T10:00:00")
    assert export_limit(now, 24 * H, at("2024-01-02T03:00:00"), 6 * H) == at("2024-01-02T03:00:00")
    assert export_limit(now, 24 * H, at("2024-01-05T00:00:00"), 6 * H) == at("2024-01-02T06:00:00")


def test_naive_and_offset_times_whatever_the_local_zone(monkeypatch) -> None:
    import time

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        naive = parse_datetime("2024-01-31T10:00:00", "start_date")
        assert naive.utcoffset() == dt.timedelta(0) and fmt(naive) == "2024-01-31T10:00:00Z"
        shifted = parse_datetime("2024-01-31T12:00:00+02:00", "start_date")
        assert shifted.tzinfo == UTC and shifted.hour == 10
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
