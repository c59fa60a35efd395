"""The retry promises of README "Guarantees" item 3, pinned on the emulator's request log.

The waits between tries are read from the log's timestamps, on a virtual clock: the tap's sleeps
between tries (backoff's, the download resume's) advance that clock instead of sleeping, and the
emulator stamps each request with it. So a wait of an hour is checked in no time, and no test has a
wall-clock bound. Each test would fail on a tap that broke its promise: Retry-After ignored or not
capped, no backoff or no jitter, one try more or fewer than documented, no request_timeout.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import types
import typing as t

import backoff._sync
import pytest

from tap_fullstory.sources import download, http
from tap_fullstory.tap import TapFullStory
from tap_fullstory.window_records import REDOWNLOADS

START, END = "2024-01-01T00:00:00Z", "2024-01-01T06:00:00Z"  # one 6 h window


class VirtualClock:
    """Time that moves only when the tap waits between tries."""

    def __init__(self) -> None:
        self.now = 0.0
        self._lock = threading.Lock()

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> VirtualClock:
    """The tap's waits between tries (backoff's sleep, the download resume's) on a virtual clock."""
    virtual = VirtualClock()
    monkeypatch.setattr(backoff._sync, "time", types.SimpleNamespace(sleep=virtual.sleep))
    monkeypatch.setattr(download, "time", types.SimpleNamespace(sleep=virtual.sleep,
                                                                monotonic=time.monotonic))
    return virtual


@pytest.fixture
def jitter(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """random.random() as the tap's jitter sees it: 0.0, 0.5, 0.99, 0.0, ... (factors 0.75, 1.0,
    1.245): the waits can then be compared exactly."""
    draws = [0.0, 0.5, 0.99]
    cycle = itertools.cycle(draws)
    monkeypatch.setattr(http.random, "random", lambda: next(cycle))
    return draws


class Run(t.NamedTuple):
    code: int
    records: list[dict]
    errors: list[str]
    warnings: list[str]


def run_tap(emu: t.Any, clock: VirtualClock, capsysbinary: pytest.CaptureFixture[bytes],
            caplog: pytest.LogCaptureFixture, **config: t.Any) -> Run:
    """One in-process run of the tap over [START, END) against `emu`, its requests stamped by `clock`."""
    import json

    emu.book.clock = clock.time
    tap = TapFullStory(config={
        "api_key": emu.api_key, "api_url": emu.base_url, "start_date": START, "end_date": END,
        "export_window": "6h", "poll_interval": 0.01, **config,
    }, parse_env_config=False, validate_config=True)
    code = 0
    with caplog.at_level(logging.INFO):
        try:
            tap.sync_all()
        except SystemExit as exc:
            code = int(exc.code or 0)
    out = capsysbinary.readouterr().out
    records = [m["record"] for m in map(json.loads, out.splitlines()) if m["type"] == "RECORD"]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    return Run(code, records, errors, warnings)


def gaps(emu: t.Any, endpoint: str) -> list[float]:
    """Virtual seconds between consecutive requests to `endpoint`."""
    times = [e["t"] for e in emu.requests(endpoint)]
    return [b - a for a, b in itertools.pairwise(times)]


@pytest.fixture
def emu(make_emulator: t.Callable[..., t.Any]) -> t.Any:
    return make_emulator(start="2024-01-01", days=1, events_per_hour=20)


def assert_complete(emu: t.Any, run: Run) -> None:
    assert run.code == 0, run.errors
    assert len(run.records) == len(emu.expected_rows(START, END)) > 0


# ----------------------------------------------------------------------------- Retry-After


@pytest.mark.parametrize(("endpoint", "kind", "asked"), [
    ("create", "429_json", 7), ("operation", "429_html", 3), ("results", "503", 11),
    ("download", "429_json", 5),
])
def test_retry_after_is_waited_as_asked(emu, clock, capsysbinary, caplog, endpoint, kind, asked) -> None:
    emu.add_fault(endpoint, kind, nth=1, times=2, retry_after=asked)
    run = run_tap(emu, clock, capsysbinary, caplog)
    assert_complete(emu, run)
    assert [e["fault"] for e in emu.requests(endpoint)][:3] == [kind, kind, None]
    assert gaps(emu, endpoint)[:2] == [asked, asked]  # not the backoff's 1 s and 2 s


def test_a_retry_after_beyond_an_hour_is_capped_at_an_hour(emu, clock, capsysbinary, caplog) -> None:
    emu.add_fault("create", "429_json", nth=1, times=1, retry_after=7200)
    emu.add_fault("download", "503", nth=1, times=1, retry_after=86_400)
    run = run_tap(emu, clock, capsysbinary, caplog)
    assert_complete(emu, run)
    assert gaps(emu, "create") == [3600]
    assert gaps(emu, "download") == [3600]
    assert http.RETRY_AFTER_CAP == 3600


# ----------------------------------------------------------------------------- backoff and jitter


def test_without_retry_after_the_waits_double_up_to_60_s_with_jitter(
        emu, clock, capsysbinary, caplog, jitter) -> None:
    """7 failures, then the 8th try succeeds: waits 1, 2, 4, ... 60 s (capped), each times a jitter
    factor in [0.75, 1.25)."""
    emu.add_fault("create", "503", nth=1, times=7)  # the HTML 503 with no Retry-After
    run = run_tap(emu, clock, capsysbinary, caplog)
    assert_complete(emu, run)
    factors = [0.75 + d / 2 for d in itertools.islice(itertools.cycle(jitter), 7)]
    want = [base * f for base, f in zip([1, 2, 4, 8, 16, 32, 60], factors, strict=True)]
    assert gaps(emu, "create") == pytest.approx(want)
    assert [w for w in run.warnings if w.startswith("Retrying in")][:2] == [
        "Retrying in 0.8 s (attempt 1 of 8): FullStory answered 503 for /segments/v1/exports: "
        "Service Unavailable",
        "Retrying in 2.0 s (attempt 2 of 8): FullStory answered 503 for /segments/v1/exports: "
        "Service Unavailable"]


def test_download_drops_resume_after_waits_that_double_with_jitter(
        emu, clock, capsysbinary, caplog, jitter) -> None:
    emu.add_fault("download", "reset_after_bytes", nth=1, times=7, bytes=700)
    run = run_tap(emu, clock, capsysbinary, caplog)
    assert_complete(emu, run)
    factors = [0.75 + d / 2 for d in itertools.islice(itertools.cycle(jitter), 7)]
    want = [base * f for base, f in zip([1, 2, 4, 8, 16, 32, 60], factors, strict=True)]
    assert gaps(emu, "download") == pytest.approx(want)


# ----------------------------------------------------------------------------- numbers of tries


@pytest.mark.parametrize("endpoint", ["create", "operation", "results", "download"])
def test_up_to_8_tries_per_call(emu, clock, capsysbinary, caplog, endpoint) -> None:
    """README: "up to 8 tries per call". 9 failures in a row (one more than the tries) end the run
    after exactly 8 requests; 7 failures heal on the 8th (the backoff test above)."""
    emu.add_fault(endpoint, "503", nth=1, times=http.MAX_TRIES + 1, retry_after=0)
    run = run_tap(emu, clock, capsysbinary, caplog)
    assert run.code == 1
    assert len(emu.requests(endpoint)) == 8 == http.MAX_TRIES
    assert len(run.errors) == 1, run.errors
    assert "503" in run.errors[0] and "8 tries" in run.errors[0], run.errors


@pytest.mark.parametrize(("times", "healed"), [(7, True), (9, False)])
def test_up_to_8_tries_per_download_cut_mid_body(emu, clock, capsysbinary, caplog, times,
                                                 healed) -> None:
    """README: a download cut mid-body resumes with Range, up to 8 tries in all."""
    emu.add_fault("download", "reset_after_bytes", nth=1, times=times, bytes=700)
    run = run_tap(emu, clock, capsysbinary, caplog)
    if healed:
        assert_complete(emu, run)
        assert len(emu.requests("download")) == times + 1
    else:
        assert run.code == 1 and not run.records
        assert len(emu.requests("download")) == 8 == download.MAX_DROPS
        assert len(run.errors) == 1 and "failed 8 times" in run.errors[0], run.errors


@pytest.mark.parametrize(("times", "healed"), [(3, True), (5, False)])
def test_a_truncated_gzip_is_downloaded_again_up_to_3_times(emu, clock, capsysbinary, caplog, times,
                                                            healed) -> None:
    """README: a truncated gzip is downloaded again, up to 3 times (4 downloads in all), resuming
    after the rows already emitted: no row twice."""
    emu.add_fault("download", "truncated_gzip", nth=1, times=times)
    run = run_tap(emu, clock, capsysbinary, caplog)
    downloads = len(emu.requests("download"))
    if healed:
        assert_complete(emu, run)
        assert len({r["EventId"] for r in run.records}) == len(run.records)
        assert downloads == times + 1
    else:
        assert run.code == 1
        assert downloads == 4 == REDOWNLOADS + 1
        assert len(run.errors) == 1 and "truncated" in run.errors[0], run.errors


# ----------------------------------------------------------------------------- request_timeout


@pytest.mark.parametrize("endpoint", ["create", "operation", "results", "download"])
def test_a_response_that_stalls_past_request_timeout_is_retried(emu, clock, capsysbinary, caplog,
                                                               endpoint) -> None:
    """The answer is held back 60 s; with request_timeout 1 the tap gives up on it after 1 s and
    tries again (a tap without the timeout would wait, get the late answer, and never retry)."""
    emu.add_fault(endpoint, "stall", nth=1, times=1, seconds=60)
    run = run_tap(emu, clock, capsysbinary, caplog, request_timeout=1)
    assert_complete(emu, run)
    log = emu.requests(endpoint)
    assert [e["fault"] for e in log[:2]] == ["stall", None]
    assert any("Timeout" in w for w in run.warnings), run.warnings


def test_a_download_body_that_stalls_mid_way_is_tried_again(emu, clock, capsysbinary, caplog) -> None:
    """Headers and 700 bytes, then nothing for 60 s: the read times out after request_timeout and the
    download goes on (from the last whole chunk on disk: here the start, the file being small)."""
    emu.add_fault("download", "stall", nth=1, times=1, seconds=60, bytes=700)
    run = run_tap(emu, clock, capsysbinary, caplog, request_timeout=1)
    assert_complete(emu, run)
    assert [e["fault"] for e in emu.requests("download")] == ["stall", None]
    assert any("dropped after" in w and "ReadTimeout" in w for w in run.warnings), run.warnings
