"""Pipelined windows (issue #16): max_pending_exports > 1 changes when exports are prepared, never
what the tap emits.

End to end (the tap CLI against the emulator, which keeps each export PENDING for a while with
--prepare-seconds): pipelined runs equal sequential ones record for record and state for state, in
RECORD mode and in Parquet day batches; a FAILED export in the middle stops at the previous
window's bookmark and a rerun completes exactly; a decode failure abandons the exports created ahead
(logged, no secrets, no spool file left); a concurrent-export limit (429) only slows it down. The
Pipeline's bounds (exports pending, spool files) are checked directly with a scripted source.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import typing as t
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tap_fullstory.sources.download import Spooled
from tap_fullstory.sources.pipeline import Pipeline
from tap_fullstory.windows import UTC, Window, plan_windows
from tests.tapio import TapRun, run_tap

START, END = "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"
WINDOWS = ["2024-01-01T00:00:00Z", "2024-01-01T06:00:00Z", "2024-01-01T12:00:00Z", "2024-01-01T18:00:00Z"]


def config(emu: t.Any, pending: int, **extra: t.Any) -> dict[str, t.Any]:
    return {"api_key": emu.api_key, "api_url": emu.base_url, "start_date": START, "end_date": END,
            "export_window": "6h", "poll_interval": 0.05, "max_pending_exports": pending, **extra}


def ok(run: TapRun) -> TapRun:
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def states(run: TapRun) -> list[dict]:
    """STATE values without the signpost (the run's clock time)."""
    out = []
    for value in run.states:
        events = dict(value["bookmarks"]["events"])
        events.pop("replication_key_signpost", None)
        out.append({**value, "bookmarks": {**value["bookmarks"], "events": events}})
    return out


@pytest.fixture(scope="module")
def preparing(make_emulator_module: t.Callable[..., t.Any]) -> t.Any:
    """Two UTC days of 6 h windows (the RECORD runs take the first); each export stays PENDING 0.6 s after its creation."""
    return make_emulator_module(start=START, days=2, events_per_hour=400, seed=21,
                                prepare_seconds=0.6, pending_polls=0)


@pytest.fixture(scope="module")
def sequential(preparing: t.Any) -> TapRun:
    preparing.reset_stats()
    run = ok(run_tap(config(preparing, 1)))
    assert preparing.stats()["max_preparing"] == 1
    return run


def test_pipelined_records_and_states_equal_sequential(preparing, sequential) -> None:
    preparing.reset_stats()
    run = ok(run_tap(config(preparing, 3)))
    stats = preparing.stats()
    assert 1 < stats["max_preparing"] <= 3  # prepared ahead, never more than the setting
    assert stats["requests"]["create"] == len(WINDOWS)  # each window exported once
    assert run.records == sequential.records and len(run.records) > 1000
    assert states(run) == states(sequential)
    assert run.bookmark() == END


@pytest.mark.slow
def test_pipelined_parquet_day_batches_equal_sequential(preparing, tmp_path) -> None:
    def batch(pending: int) -> tuple[TapRun, list[list[dict]]]:
        root = tmp_path / f"p{pending}"
        cfg = config(preparing, pending, end_date="2024-01-03T00:00:00Z",
                     batch_config={"encoding": {"format": "parquet"},
                                   "storage": {"root": str(root), "prefix": "fs-"}})
        run = ok(run_tap(cfg))
        files = [url for b in run.batches for url in b["manifest"]]
        return run, [pq.read_table(url.removeprefix("file://")).to_pylist() for url in files]

    seq_run, seq_days = batch(1)
    pipe_run, pipe_days = batch(4)
    assert len(seq_days) == 2 and all(seq_days)
    assert pipe_days == seq_days
    assert states(pipe_run) == states(seq_run)
    assert [m["type"] for m in pipe_run.messages] == [m["type"] for m in seq_run.messages]


def test_failed_export_in_the_middle_stops_at_the_previous_window_and_a_rerun_completes(
        preparing, sequential) -> None:
    preparing.fail_exports(WINDOWS[2], "export failed: quota (injected)")
    try:
        failed = run_tap(config(preparing, 3))
    finally:
        preparing.fail_exports(WINDOWS[2], None)
    assert failed.returncode != 0
    assert "Traceback" not in failed.stderr
    error = [line for line in failed.stderr.splitlines() if "ERROR" in line][-1]
    assert "FAILED" in error and WINDOWS[2] in error and "quota" in error
    assert failed.bookmark() == WINDOWS[2]
    before = [r for r in sequential.records if r["ExportStart"] < WINDOWS[2]]
    assert failed.records == before
    rerun = ok(run_tap(config(preparing, 3), state=failed.final_state))
    assert rerun.records == [r for r in sequential.records if r["ExportStart"] >= WINDOWS[2]]
    assert failed.records + rerun.records == sequential.records
    assert rerun.bookmark() == END


def test_decode_failure_abandons_the_exports_created_ahead(make_emulator, tmp_path) -> None:
    emu = make_emulator(start=START, days=1, events_per_hour=400, seed=22, prepare_seconds=0.3,
                        pending_polls=0)
    emu.add_fault("download", "malformed_row", nth=2, row=5)  # downloads come in window order
    spool = tmp_path / "spool"
    spool.mkdir()
    run = run_tap(config(emu, 4), env={"TMPDIR": str(spool)})
    assert run.returncode != 0
    assert [f["window"][0] for f in emu.stats()["faults"]] == [WINDOWS[1]]
    assert run.bookmark() == WINDOWS[1]
    # every export created for a window after the failed one is named as abandoned, nothing else
    created = sorted({json.loads(body)["timeRange"]["start"] for body in emu.create_bodies})
    ahead = [start for start in created if start > WINDOWS[1]]
    assert ahead  # made while windows 1 and 2 were prepared, downloaded and read
    abandoned = [line for line in run.stderr.splitlines() if "Abandoned" in line]
    assert len(abandoned) == 1 and f"Abandoned {len(ahead)} export(s)" in abandoned[0]
    assert all(f"[{start}, " in abandoned[0] for start in ahead)
    assert emu.api_key not in run.stderr and "/download/" not in run.stderr
    assert list(spool.iterdir()) == []  # files downloaded ahead were removed


def test_a_concurrent_export_limit_only_slows_it_down(make_emulator, sequential) -> None:
    """FullStory documents no such limit; if it had one (429 + Retry-After on create), the
    exports prepared ahead would wait for a slot and the output stays exactly the same."""
    emu = make_emulator(start=START, days=1, events_per_hour=400, seed=21, prepare_seconds=0.6,
                        pending_polls=0, max_preparing=2)
    run = ok(run_tap(config(emu, 4)))
    stats = emu.stats()
    assert stats["max_preparing"] <= 2 and stats["too_many_exports"] >= 1
    assert stats["operations"] == len(WINDOWS)
    assert run.records == sequential.records
    assert states(run) == states(sequential)


# --------------------------------------------------------------------------------------------- bounds


class ScriptedSource:
    """Prepares instantly; records how many exports are pending and spool files exist."""

    poll_interval = 0.001
    poll_timeout = 60.0

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.lock = threading.Lock()
        self.created = 0
        self.taken = 0
        self.most_pending = 0
        self.most_files = 0
        self.polls: dict[str, int] = {}

    def create(self, window: Window) -> str:
        with self.lock:
            self.created += 1
            self.most_pending = max(self.most_pending, self.created - self.taken)
        return window.start.isoformat()

    def check(self, operation_id: str, window: Window, deadline: float) -> str | None:
        self.polls[operation_id] = self.polls.get(operation_id, 0) + 1
        return operation_id if self.polls[operation_id] >= 2 else None

    def download(self, export_id: str, window: Window, stop: threading.Event | None = None) -> Spooled:
        fd, path = tempfile.mkstemp(dir=self.directory)
        os.write(fd, export_id.encode())
        os.close(fd)
        with self.lock:
            self.most_files = max(self.most_files, len(list(self.directory.iterdir())))
        return Spooled(path=path, size=len(export_id), seconds=0.0)


@pytest.mark.parametrize("pending", [2, 3, 5])
def test_pipeline_bounds_pending_exports_and_spool_files(tmp_path, pending) -> None:
    import datetime as dt

    start = dt.datetime(2024, 1, 1, tzinfo=UTC)
    windows = plan_windows(start, dt.timedelta(hours=1), limit=start + dt.timedelta(hours=12))
    source = ScriptedSource(tmp_path)
    pipeline = Pipeline(source, pending, logging.getLogger("test"))
    got = []
    try:
        for i, window in enumerate(windows):
            spooled = pipeline.fetch(window, windows[i + 1:])
            got.append(Path(spooled.path).read_text())
            spooled.close()
            with source.lock:
                source.taken += 1
    finally:
        pipeline.close()
    assert got == [w.start.isoformat() for w in windows]  # in order, each once
    assert source.created == len(windows)
    assert source.most_pending <= pending
    assert source.most_files <= 2  # the window being decoded and the next one
    assert list(tmp_path.iterdir()) == []


def test_pipeline_refuses_windows_out_of_order(tmp_path) -> None:
    import datetime as dt

    start = dt.datetime(2024, 1, 1, tzinfo=UTC)
    windows = plan_windows(start, dt.timedelta(hours=1), limit=start + dt.timedelta(hours=4))
    pipeline = Pipeline(ScriptedSource(tmp_path), 3, logging.getLogger("test"))
    try:
        pipeline.fetch(windows[0], windows[1:]).close()
        with pytest.raises(RuntimeError, match="out of order"):
            pipeline.fetch(windows[2], windows[3:])
    finally:
        pipeline.close()
