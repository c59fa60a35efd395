"""Day batches in parts: at most `batch_size` rows per file, one BATCH and one STATE per UTC day,
in Parquet, JSONL and Arrow IPC; Arrow equal to Parquet row for row; a crash mid-day (an error,
or kill -9) never leaves a manifest naming a partial part, and a rerun loads the day once."""

from __future__ import annotations

import json
import signal
import subprocess
import tempfile
import time
import typing as t
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.tapio import TAP, TapRun, run_tap
from tests.test_batches import (
    END,
    START,
    _bits,
    by_id,
    config,
    jsonl_rows,
    local,
    manifests,
    normal,
    ok,
    parquet_rows,
)

PART = 250


def arrow_table(url: str) -> pa.Table:
    with pa.ipc.open_file(local(url)) as reader:
        return reader.read_all()


def read_any(url: str) -> list[dict[str, t.Any]]:
    if url.endswith(".arrow"):
        return arrow_table(url).to_pylist()
    return parquet_rows(url) if url.endswith(".parquet") else jsonl_rows(url)


def day_of(url: str) -> str:
    return local(url).name[len("fs-events-"):][:10]


@pytest.fixture(scope="module")
def record_rows(emulator) -> list[dict[str, t.Any]]:
    return ok(run_tap(config(emulator.base_url))).records


@pytest.fixture(scope="module")
def part_runs(emulator, tmp_path_factory) -> dict[str, TapRun]:
    runs = {}
    for fmt, compression in (("parquet", "none"), ("jsonl", "gzip"), ("arrow", "zstd")):
        root = tmp_path_factory.mktemp(fmt)
        runs[fmt] = ok(run_tap(config(emulator.base_url, root.as_uri(), fmt, compression,
                                      batch={"batch_size": PART})))
    return runs


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "arrow"])
def test_parts_of_at_most_batch_size_one_batch_and_state_per_day(part_runs, record_rows, fmt
                                                                  ) -> None:
    run = part_runs[fmt]
    kinds = [m["type"] for m in run.messages if m["type"] in ("BATCH", "STATE")]
    at = [i for i, kind in enumerate(kinds) if kind == "BATCH"]
    assert len(at) == 3 and all(kinds[i + 1] == "STATE" for i in at)  # a STATE after each day
    assert [{day_of(u) for u in b["manifest"]} for b in run.batches] == [
        {"2024-01-01"}, {"2024-01-02"}, {"2024-01-03"}]
    for batch in run.batches:
        sizes = [len(read_any(u)) for u in batch["manifest"]]
        assert len(sizes) > 1  # the day really is in parts
        assert sizes[:-1] == [PART] * (len(sizes) - 1) and 0 < sizes[-1] <= PART
    rows = [r for u in manifests(run) for r in read_any(u)]
    assert [normal(r) for r in by_id(rows)] == [normal(r) for r in by_id(record_rows)]


def test_arrow_files_equal_the_parquet_files_row_for_row(part_runs) -> None:
    arrow, parquet = part_runs["arrow"], part_runs["parquet"]
    assert arrow.batches[0]["encoding"] == {"format": "arrow", "compression": "zstd"}
    a_urls, p_urls = manifests(arrow), manifests(parquet)
    assert len(a_urls) == len(p_urls)
    for a_url, p_url in zip(a_urls, p_urls, strict=True):
        a, p = arrow_table(a_url), pq.read_table(local(p_url))
        assert a.schema.remove_metadata().equals(p.schema.remove_metadata())
        assert a.schema.field("CustomVars").type == pa.json_()  # the arrow.json extension type
        assert _bits(a) == _bits(p)  # same rows, same order, floats bit for bit


def test_bad_batch_config_one_clear_line(emulator, tmp_path) -> None:
    # (the SDK's schema check words the second as config['batch_config']['encoding']['format'])
    for batch, words in (({"batch_size": 0}, ("batch_config.batch_size",)),
                         ({"encoding": {"format": "csv"}}, ("batch_config", "format", "csv"))):
        cfg = config(emulator.base_url, tmp_path.as_uri())
        cfg["batch_config"].update(batch)
        run = run_tap(cfg)
        assert run.returncode != 0 and run.messages == []
        errors = [x for x in run.stderr.splitlines() if "| ERROR" in x
                  and not x.endswith("Config validation failed")]
        assert len(errors) == 1 and all(w in errors[0] for w in words), errors
    cfg = config(emulator.base_url, tmp_path.as_uri(), "arrow", "gzip")
    run = run_tap(cfg)
    assert run.returncode != 0 and "batch_config.encoding.compression" in run.stderr


def test_kill_mid_day_leaves_no_manifest_naming_a_part_and_rerun_loads_it_once(
        make_emulator, tmp_path) -> None:
    emu = make_emulator(start=START, days=3, events_per_hour=60, seed=23)
    # window 6 (2024-01-02 06:00) cannot be created for a while: the tap is killed while day 2's
    # first window is already in committed parts
    emu.add_fault("create", "500", nth=6, times=1000)
    out = tmp_path / "out"
    # one export at a time, so that the 7th create means window 5 is written (pipelining would
    # create window 6 early); the pipelined crash case is bench/soak.py's
    cfg = config(emu.base_url, out.as_uri(), "parquet", batch={"batch_size": 100},
                 max_pending_exports=1)
    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = Path(tmp, "config.json")
        cfg_path.write_text(json.dumps(cfg))
        proc = subprocess.Popen([*TAP, "--config", str(cfg_path)], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        deadline = time.monotonic() + 120

        def stuck_in_day_2() -> bool:
            """The 6th create has failed once and is being retried, and (with exports prepared
            ahead, that comes earlier) day 2's first window is in committed parts."""
            return emu.stats()["requests"].get("create", 0) >= 7 and out.is_dir() and any(
                day_of(p.as_uri()) == "2024-01-02" for p in out.iterdir())

        while not stuck_in_day_2() and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        stdout, _ = proc.communicate(timeout=30)
    messages = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    killed = TapRun(-9, stdout, "", messages)
    # day 2's committed parts are on disk (orphans: a rerun writes the day anew)
    assert any(day_of(p.as_uri()) == "2024-01-02" for p in out.iterdir())
    named = manifests(killed)
    assert named and all(day_of(u) == "2024-01-01" for u in named)  # no day-2 part is named
    assert killed.bookmark() == "2024-01-02T00:00:00Z"

    emu.clear_faults()
    resumed = ok(run_tap(cfg, state=killed.final_state))
    assert [{day_of(u) for u in b["manifest"]} for b in resumed.batches] == [
        {"2024-01-02"}, {"2024-01-03"}]
    rows = [r for u in named + manifests(resumed) for r in parquet_rows(u)]
    expected = emu.expected_rows(START, END)
    assert len(rows) == len(expected) == len({r["EventId"] for r in rows})
