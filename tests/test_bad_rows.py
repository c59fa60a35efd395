"""Rows that could stall a pipeline (issue #15): NUL characters, lone surrogate escapes, rows that
cannot be decoded; the reference's rules, the decoders, the quarantine, and the tap end to end
over the emulator serving the bytes verbatim (segment export and bundles).

The C scanner against the reference with NUL escapes: tests/test_native.py. Into PostgreSQL
through Meltano: tests/test_meltano_bad_rows.py.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import typing as t
from pathlib import Path

import orjson
import pytest

from tap_fullstory import text
from tap_fullstory.fields import Splitter
from tap_fullstory.keys import EventKeyer
from tap_fullstory.records import RecordMaker
from tap_fullstory.sources.decode import MalformedExportError, iter_rows
from tests.tapio import run_tap

START, END = "2024-01-01T00:00:00Z", "2024-01-01T06:00:00Z"

# --- lone surrogates --------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "value"), [
    (rb'"\ud83d"', "\ufffd"),                        # a high surrogate alone
    (rb'"x\udc00y"', "x\ufffdy"),                    # a low surrogate alone
    (rb'"\ud83d\ud83d\ude00"', "\ufffd\U0001F600"),  # a lone high, then a pair
    (rb'"\ud83d\ude00"', "\U0001F600"),              # a pair: as orjson decodes it
    (rb'"\\ud83d"', "\\ud83d"),                      # an escaped backslash: no escape at all
    (rb'"\uD83D"', "\ufffd"),                        # upper-case hex digits
])
def test_lone_surrogate_escapes_decode_as_replacement_characters(raw: bytes, value: str) -> None:
    row = text.loads(b'{"EventTargetText":' + raw + b',"n":123456789012345678901}')
    assert row["EventTargetText"] == value
    assert row["n"] == orjson.loads(b"123456789012345678901")  # orjson's verdict on the rest
    assert orjson.loads(orjson.dumps(row)) == row  # and the record can be written


@pytest.mark.parametrize("raw", [b'{"a":"\\ud83d",}', b'{"a":"\xff"}', b'{"a":"x\x00"}', b"{"])
def test_what_orjson_refuses_besides_lone_surrogates_stays_refused(raw: bytes) -> None:
    with pytest.raises(orjson.JSONDecodeError):
        text.loads(raw)


# --- NUL in the reference -------------------------------------------------------------------

NUL_ROW = (b'{"EventStart":"2024-01-01T00:00:01.000Z","EventType":"click","UserId":7,'
           b'"EventTargetText":"bad\\u0000text","PageUrl":"https://x/\\u0000",'
           b'"user_tags_strs":["a\\u0000b",["\\u0000"]],"user_n\\u0000ame_str":"v\\u0000"}')
PLAIN_ROW = b'{"EventStart":"2024-01-01T00:00:01.000Z","EventType":"click","UserId":7}'


def _records(lines: list[bytes], *, strip: bool) -> tuple[list[dict], list[int]]:
    told: list[int] = []
    maker = RecordMaker(mobile=False, use_keys=True, export_start=START, export_end=END,
                        strip_nul=strip, on_nul=told.append)
    return list(maker.chunk_records(b"\n".join(lines), None)), told


def test_nul_is_stripped_from_every_string_and_custom_var_with_strip() -> None:
    (nul, _), told = _records([NUL_ROW, PLAIN_ROW], strip=True)
    assert nul["EventTargetText"] == "badtext" and nul["PageUrl"] == "https://x/"
    assert nul["CustomVars"] == {"user_name_str": "v", "user_tags_strs": ["ab", [""]]}
    assert not text.has_nul(nul) and told == [1]
    assert b"\\u0000" not in orjson.dumps(nul)


def test_nul_is_kept_with_keep_and_told_before_the_row_is_written() -> None:
    """Told when the first NUL row is made, before it is handed on to be written, and not before."""
    told: list[int] = []
    maker = RecordMaker(mobile=False, use_keys=True, export_start=START, export_end=END,
                        strip_nul=False, on_nul=told.append)
    records = maker.chunk_records(b"\n".join([PLAIN_ROW, NUL_ROW, NUL_ROW]), None)
    next(records)
    assert told == []
    nul = next(records)
    assert told == [1]
    assert nul["EventTargetText"] == "bad\x00text"
    assert nul["CustomVars"]["user_n\x00ame_str"] == "v\x00"
    next(records)
    assert told == [1, 2]


@pytest.mark.parametrize("c_scanner", [True, False], ids=["C", "reference"])
def test_the_nul_keep_warning_comes_before_the_first_nul_row_on_stdout(make_emulator,
                                                                       c_scanner) -> None:
    """End to end, stdout and stderr into one unbuffered pipe: the order they were written in.
    One WARNING for the window, before the first RECORD line holding a NUL."""
    import os
    import subprocess
    import sys
    import tempfile

    emu = make_emulator(start=START, days=0.25, events_per_hour=400, seed=8)
    at = emu.expected_rows(START, END)[299]["EventStart"]
    row = NUL_ROW.replace(b"2024-01-01T00:00:01.000Z", at.encode())
    emu.add_fault("download", "raw_row", times=10, row=300, raw=row + b"\n" + row)
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp, "config.json")
        config.write_text(json.dumps(_config(emu, nul_characters="keep", c_scanner=c_scanner)))
        proc = subprocess.run([sys.executable, "-m", "tap_fullstory.tap", "--config", str(config)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"}, check=False)
    lines = proc.stdout.decode().splitlines()
    assert proc.returncode == 0, lines[-20:]
    warned = [i for i, line in enumerate(lines) if "kept as sent (nul_characters=keep)" in line]
    nul_records = [i for i, line in enumerate(lines)
                   if line.startswith('{"type":"RECORD"') and "\\u0000" in line]
    assert len(warned) == 1 and len(nul_records) == 2
    assert warned[0] < nul_records[0]


def test_event_id_is_the_same_with_strip_and_keep() -> None:
    """EventId hashes the values as exported: the same under either setting, for rows with NUL
    and without, and for rows without NUL the same as before the setting existed."""
    stripped, _ = _records([NUL_ROW, PLAIN_ROW, NUL_ROW], strip=True)
    kept, _ = _records([NUL_ROW, PLAIN_ROW, NUL_ROW], strip=False)
    assert [r["EventId"] for r in stripped] == [r["EventId"] for r in kept]
    assert len({r["EventId"] for r in kept}) == 3  # the repeat has its own ordinal
    keyer, split = EventKeyer(), Splitter(mobile=False).split
    assert kept[1]["EventId"] == [keyer.key(split(orjson.loads(line))[0])
                                  for line in (NUL_ROW, PLAIN_ROW)][1]
    assert kept[0]["EventId"] == EventKeyer().key(split(json.loads(NUL_ROW))[0])


def test_a_literal_backslash_u0000_is_not_a_nul() -> None:
    (row,), told = _records([b'{"EventStart":"2024-01-01T00:00:01.000Z","x_str":"\\\\u0000"}'],
                            strip=True)
    assert row["CustomVars"] == {"x_str": "\\u0000"} and told == []


# --- decoding bad rows ------------------------------------------------------------------------

GOOD = [{"EventStart": f"2024-01-01T00:00:0{i}.000Z", "EventType": "click", "i": i} for i in range(4)]


def _write(tmp_path: Path, body: bytes) -> str:
    path = tmp_path / "export.gz"
    path.write_bytes(gzip.compress(body))
    return str(path)


def _decode(path: str) -> tuple[list[dict], list[tuple[int, bytes, str]]]:
    bad: list[tuple[int, bytes, str]] = []
    rows = list(iter_rows(path, loads=text.loads, on_bad=lambda *b: bad.append(b)))
    return rows, bad


BAD_LINES = [
    (b'{"EventType":"\xff"}', "not valid UTF-8 (byte 0xff at offset 14)"),
    (b'{"EventType":"a\x00b"}', "not valid JSON"),  # a raw NUL byte: a control character
    (b'{"EventType":"cut sh', "not valid JSON"),    # a truncated line
    (b'["not", "an", "object"]', "not a JSON object"),
]


@pytest.mark.parametrize(("raw", "cause"), BAD_LINES)
def test_ndjson_bad_row_goes_to_on_bad_with_its_line_number(tmp_path, raw, cause) -> None:
    lines = [orjson.dumps(r) for r in GOOD]
    lines.insert(2, raw)
    rows, bad = _decode(_write(tmp_path, b"\n".join(lines)))  # the bad line may be the last one
    assert rows == GOOD
    assert [(n, r) for n, r, _ in bad] == [(3, raw)] and bad[0][2].startswith(cause)
    with pytest.raises(MalformedExportError, match="row 3 is not") as failed:
        list(iter_rows(_write(tmp_path, b"\n".join(lines)), loads=text.loads))
    assert failed.value.row == 3


@pytest.mark.parametrize(("raw", "cause"), BAD_LINES[:2])
def test_json_array_bad_element_goes_to_on_bad_and_its_neighbours_stay(tmp_path, raw, cause) -> None:
    pieces = [orjson.dumps(r) for r in GOOD]
    pieces.insert(2, raw)
    rows, bad = _decode(_write(tmp_path, b"[" + b",\n".join(pieces) + b"]"))
    assert rows == GOOD
    assert [(n, r) for n, r, _ in bad] == [(3, raw)] and bad[0][2].startswith(cause)


def test_json_array_cut_inside_a_string_after_non_ascii_is_not_a_bad_row(tmp_path) -> None:
    """A '},{' inside a string, after multi-byte characters: orjson reports where the piece ends
    in characters, not bytes; the piece is joined with the next one as it should be."""
    tricky = {"EventStart": "2024-01-01T00:00:09.000Z", "EventTargetText": "\u00e9\u00e9},{\"x\":1}"}
    rows, bad = _decode(_write(tmp_path, orjson.dumps([*GOOD, tricky])))
    assert rows == [*GOOD, tricky] and bad == []


def test_json_array_truncated_last_element(tmp_path) -> None:
    body = orjson.dumps(GOOD)[:-1] + b',{"EventStart":"2024-01-01T00:0]'
    rows, bad = _decode(_write(tmp_path, body))
    assert rows == GOOD and [n for n, _, _ in bad] == [5]
    with pytest.raises(MalformedExportError, match="not closed after row 4"):
        _decode(_write(tmp_path, orjson.dumps(GOOD)[:-1]))


def test_lone_surrogate_rows_decode_in_both_layouts(tmp_path) -> None:
    raw = b'{"EventStart":"2024-01-01T00:00:05.000Z","EventTargetText":"\\ud83d"}'
    for body in (b"\n".join([*map(orjson.dumps, GOOD), raw]),
                 b"[" + b",".join([*map(orjson.dumps, GOOD), raw]) + b"]"):
        rows, bad = _decode(_write(tmp_path, body))
        assert bad == [] and rows[-1]["EventTargetText"] == "\ufffd"


# --- the tap, over the emulator serving the bytes verbatim ----------------------------------

INVALID = b'{"EventStart":"2024-01-01T01:00:00.000Z","EventType":"click","UserId":1,"x":"\xff\xfe"}'
SURROGATE = (b'{"EventStart":"2024-01-01T01:00:00.000Z","EventType":"click","UserId":1,'
             b'"EventTargetText":"cut \\ud83d"}')


def _config(emu: t.Any, **extra: t.Any) -> dict[str, t.Any]:
    return {"api_key": emu.api_key, "api_url": emu.base_url, "start_date": START,
            "end_date": END, "export_window": "6h", "poll_interval": 0.01, **extra}


def _quarantined(directory: Path) -> list[dict]:
    return [json.loads(line) for path in sorted(directory.glob("*.jsonl"))
            for line in path.read_text().splitlines()]


def _ids(run: t.Any) -> list[str]:
    return sorted(r["EventId"] for r in run.records)


@pytest.mark.parametrize("api", ["segment_export", "bundles"])
def test_a_bad_row_fails_the_window_naming_row_cause_and_setting(make_emulator, api) -> None:
    emu = make_emulator(start=START, days=0.25, events_per_hour=40, seed=3, bundle_hours=6)
    emu.add_fault("download" if api == "segment_export" else "get", "raw_row", times=10, row=5,
                  raw=INVALID)
    run = run_tap(_config(emu, export_api=api))
    assert run.returncode == 1 and "Traceback" not in run.stderr
    error = [line for line in run.stderr.splitlines() if "| ERROR" in line][-1]
    for words in (f"[{START}, {END})", "row 5 ", "not valid UTF-8", "on_bad_row: quarantine"):
        assert words in error, error
    assert run.bookmark() is None


@pytest.mark.parametrize("api", ["segment_export", "bundles"])
@pytest.mark.parametrize("c_scanner", [True, False])
def test_a_quarantined_row_leaves_every_other_row_once(make_emulator, tmp_path, api,
                                                       c_scanner) -> None:
    """The bad row goes to the quarantine file with its window, position and exact bytes; every
    other row is emitted once with the EventId it has without the bad row; a lone surrogate row
    loads with U+FFFD; the WARNING and the Singer metric carry the count."""
    emu = make_emulator(start=START, days=0.25, events_per_hour=400, seed=4, bundle_hours=6)
    clean = run_tap(_config(emu, export_api=api))
    emu.reset_stats()
    endpoint = "download" if api == "segment_export" else "get"
    emu.add_fault(endpoint, "raw_row", times=10, row=700, raw=INVALID + b"\n" + SURROGATE
                  if api == "segment_export" else INVALID + b"," + SURROGATE)
    run = run_tap(_config(emu, export_api=api, on_bad_row="quarantine", c_scanner=c_scanner,
                          quarantine_path=str(tmp_path / "q")))
    assert run.returncode == 0, run.stderr[-3000:]
    surrogate = [r for r in run.records if r.get("EventTargetText") == "cut \ufffd"]
    assert len(surrogate) == 1
    others = [r for r in run.records if r is not surrogate[0]]
    assert sorted(r["EventId"] for r in others) == _ids(clean) and len(clean.records) > 1000
    (entry,) = _quarantined(tmp_path / "q")
    assert (entry["export_start"], entry["export_end"], entry["row"]) == (START, END, 700)
    assert base64.b64decode(entry["raw_base64"]) == INVALID
    assert emu.api_key not in json.dumps(entry)
    warning = [line for line in run.stderr.splitlines() if "| WARNING" in line]
    assert len(warning) == 1 and "1 row(s) could not be decoded (row 700)" in warning[0]
    metrics = [json.loads(line.split("METRIC: ", 1)[1]) for line in run.stderr.splitlines()
               if "quarantined_row_count" in line]
    assert [m["value"] for m in metrics] == [1]
    assert run.bookmark() == END


def test_quarantine_is_exactly_once_across_a_redownload(make_emulator, tmp_path) -> None:
    """The first download is cut short after the bad row: the scanner writes what it can before
    it, the per-record path quarantines it, meets the truncation, downloads again and reads the
    file from the start; the row is quarantined once and nothing is emitted twice."""
    emu = make_emulator(start=START, days=0.25, events_per_hour=2000, seed=5)
    clean = run_tap(_config(emu))
    emu.reset_stats()  # requests are numbered from here
    emu.add_fault("download", "raw_row", nth=1, row=4000, raw=INVALID, truncate=True)
    emu.add_fault("download", "raw_row", nth=2, row=4000, raw=INVALID)
    run = run_tap(_config(emu, on_bad_row="quarantine", quarantine_path=str(tmp_path)))
    assert run.returncode == 0, run.stderr[-3000:]
    assert [f["kind"] for f in emu.stats()["faults"]] == ["raw_row", "raw_row"]
    resumed = re.search(r"downloading it again \(resuming after row (\d+)\)", run.stderr)
    assert resumed and int(resumed[1]) >= 4000  # the first read had passed the bad row
    assert len(run.records) == len(clean.records) > 8000
    assert _ids(run) == _ids(clean)
    assert [e["row"] for e in _quarantined(tmp_path)] == [4000]


def test_batch_mode_quarantines_under_the_storage_root(make_emulator, tmp_path) -> None:
    import pyarrow.parquet as pq

    emu = make_emulator(start=START, days=0.25, events_per_hour=400, seed=6)
    emu.add_fault("download", "raw_row", times=10, row=3, raw=INVALID)
    root = tmp_path / "batches"
    run = run_tap(_config(emu, on_bad_row="quarantine", batch_config={
        "encoding": {"format": "parquet"}, "storage": {"root": root.as_uri(), "prefix": "fs-"}}))
    assert run.returncode == 0, run.stderr[-3000:]
    (entry,) = _quarantined(root)
    assert entry["row"] == 3 and base64.b64decode(entry["raw_base64"]) == INVALID
    assert [p.name for p in root.glob("*.jsonl")] == [
        "fs-events-quarantine-20240101T000000Z-20240101T060000Z.jsonl"]
    rows = sum(pq.read_metadata(p).num_rows for p in root.glob("*.parquet"))
    assert rows == len(emu.expected_rows(START, END))


@pytest.mark.parametrize(("change", "setting"), [
    ({"nul_characters": "drop"}, "nul_characters"),
    ({"on_bad_row": "skip"}, "on_bad_row"),
    ({"on_bad_row": "quarantine"}, "quarantine_path"),  # RECORD mode: no place for the file
])
def test_bad_settings_one_clear_line(make_emulator, change, setting) -> None:
    emu = make_emulator(start=START, days=0.25, events_per_hour=10, seed=7)
    run = run_tap(_config(emu, **change))
    assert run.returncode != 0 and run.messages == []
    causes = [line for line in run.stderr.splitlines()
              if "| ERROR" in line and not line.endswith("Config validation failed")]
    assert len(causes) == 1 and setting in causes[0], causes
    assert emu.stats()["requests"] == {}
