"""README "Bad rows" promises not covered by test_bad_rows.py: the quarantine file under object
storage roots, exactly once among rows out of order, a body that is not an export, and no signed
URL or key in a quarantine file."""

from __future__ import annotations

import base64
import json
import typing as t
from pathlib import Path

import pytest

from tests.tapio import TapRun, run_tap

START, END = "2024-01-01T00:00:00Z", "2024-01-01T06:00:00Z"
NAME = "events-quarantine-20240101T000000Z-20240101T060000Z.jsonl"
KEY = "na1.QUARANTINEkey-5a1f0c9e-DoNotLeak"
INVALID = b'{"EventStart":"2024-01-01T01:00:00.000Z","EventType":"click","UserId":1,"x":"\xff\xfe"}'
EARLY = b'{"EventStart":"2024-01-01T00:00:00.000Z","EventType":"load","UserId":99,"PageId":1}'
HTML = (b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
        b"<body><h1>Bad Gateway</h1></body></html>\n")


def config(emu: t.Any, **extra: t.Any) -> dict[str, t.Any]:
    return {"api_key": emu.api_key, "api_url": emu.base_url, "start_date": START, "end_date": END,
            "export_window": "6h", "poll_interval": 0.01, "on_bad_row": "quarantine", **extra}


def ok(run: TapRun) -> TapRun:
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def entries(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def assert_no_secret(emu: t.Any, text: str) -> None:
    """Neither the key nor any signed location the emulator handed out (nor the download path)."""
    tokens = list(emu._tokens)
    assert tokens, "no signed URL was handed out: the check would prove nothing"
    for secret in [emu.api_key, base64.b64encode(emu.api_key.encode()).decode(), *tokens,
                   "/download/"]:
        assert secret not in text


# ----------------------------------------------------------------------------- object storage


def into_storage(emu: t.Any, row: int, root: str, service: dict[str, t.Any],
                 encoding: dict[str, str]) -> tuple[t.Any, TapRun]:
    """A BATCH run whose export has an undecodable row at `row`, into the stand-in's `root`."""
    emu.add_fault("download", "raw_row", times=10, row=row, raw=INVALID)
    return emu, ok(run_tap(config(emu, batch_config={
        "encoding": encoding,
        "storage": {"root": root, "prefix": "fs-", "params": service["storage_options"]}}),
        env=service["env"]))


@pytest.mark.services
def test_quarantine_under_an_s3_root(make_emulator, s3) -> None:
    import s3fs

    bucket = s3["create_bucket"]("fs-quarantine")
    root = f"s3://{bucket}/q"
    emu, run = into_storage(make_emulator(api_key=KEY, start=START, days=0.25, events_per_hour=200,
                                          seed=31), 3, root, s3, {"format": "parquet"})
    fs = s3fs.S3FileSystem(**s3["storage_options"])
    names = sorted(p.rsplit("/", 1)[1] for p in fs.ls(f"{bucket}/q"))
    assert f"fs-{NAME}" in names and sum(n.endswith(".parquet") for n in names) == 1
    text = fs.cat(f"{bucket}/q/fs-{NAME}").decode()
    (entry,) = entries(text)
    assert entry["row"] == 3 and base64.b64decode(entry["raw_base64"]) == INVALID
    assert f"{root}/fs-{NAME}" in run.stderr  # the WARNING names where it went
    assert_no_secret(emu, text)


@pytest.mark.services
def test_quarantine_under_a_gcs_root(make_emulator, gcs) -> None:
    bucket = gcs["create_bucket"]("fs-quarantine")
    root = f"gs://{bucket}/q"
    emu, run = into_storage(make_emulator(api_key=KEY, start=START, days=0.25, events_per_hour=200,
                                          seed=32), 5, root, gcs,
                            {"format": "jsonl", "compression": "gzip"})
    stored = Path(gcs["root"]) / bucket / "q" / f"fs-{NAME}"
    (entry,) = entries(stored.read_text())
    assert entry["row"] == 5 and base64.b64decode(entry["raw_base64"]) == INVALID
    assert f"{root}/fs-{NAME}" in run.stderr
    assert_no_secret(emu, stored.read_text())


# ----------------------------------------------------------------------------- exactly once


@pytest.mark.parametrize("c_scanner", [True, False], ids=["C", "reference"])
def test_a_bad_row_among_rows_out_of_order_is_quarantined_once(make_emulator, tmp_path,
                                                               c_scanner) -> None:
    """Row 5 cannot be decoded and row 6 goes back in time: the window is keyed again over the
    whole window, reading the bad row a second time; it is set aside once, every good row is
    emitted once."""
    emu = make_emulator(api_key=KEY, start=START, days=0.25, events_per_hour=400, seed=33)
    clean = ok(run_tap(config(emu, on_bad_row="fail")))
    emu.reset_stats()
    emu.add_fault("download", "raw_row", times=10, row=5, raw=INVALID + b"\n" + EARLY)
    run = ok(run_tap(config(emu, c_scanner=c_scanner, quarantine_path=str(tmp_path))))
    assert "not sorted by EventStart; keying over the whole window" in run.stderr
    ids = [r["EventId"] for r in run.records]
    assert len(ids) == len(set(ids)) == len(clean.records) + 1 > 2000
    assert set(ids) >= {r["EventId"] for r in clean.records}
    text = (tmp_path / NAME).read_text()
    assert [e["row"] for e in entries(text)] == [5]
    assert_no_secret(emu, text)


# ----------------------------------------------------------------------------- not an export


@pytest.mark.parametrize("body", [HTML, b"upstream connect error or disconnect/reset\n"],
                         ids=["html", "text"])
@pytest.mark.parametrize("c_scanner", [True, False], ids=["C", "reference"])
def test_a_body_that_is_not_an_export_fails_the_window_under_quarantine(make_emulator, tmp_path,
                                                                        body, c_scanner) -> None:
    """Its lines are not bad rows of an export: no quarantine file, no record, no bookmark."""
    emu = make_emulator(api_key=KEY, start=START, days=0.25, events_per_hour=40, seed=34)
    emu.add_fault("download", "raw_body", times=10, raw=body)
    run = run_tap(config(emu, c_scanner=c_scanner, quarantine_path=str(tmp_path)))
    assert run.returncode == 1 and not run.records and run.bookmark() is None
    errors = [line for line in run.stderr.splitlines() if "| ERROR" in line]
    assert len(errors) == 1 and "neither NDJSON nor a JSON array" in errors[0], errors
    assert list(tmp_path.iterdir()) == []


def test_a_single_bad_first_line_of_an_export_is_still_a_bad_row(make_emulator, tmp_path) -> None:
    """The rule above needs both: a body not beginning like JSON, and no row that decodes."""
    emu = make_emulator(api_key=KEY, start=START, days=0.25, events_per_hour=40, seed=35)
    emu.add_fault("download", "raw_row", times=10, row=1, raw=b"<garbage>")
    run = ok(run_tap(config(emu, quarantine_path=str(tmp_path))))
    assert len(run.records) == len(emu.expected_rows(START, END)) > 0
    assert [e["row"] for e in entries((tmp_path / NAME).read_text())] == [1]
