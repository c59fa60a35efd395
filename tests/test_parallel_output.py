"""The two-process RECORD writer (output.write_ndjson_parallel) writes exactly what the sequential
path writes, in order, and stops cleanly (exact row count) on a malformed row or a truncated file."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest

from tap_fullstory import output
from tap_fullstory.fields import CUSTOM_VARS, EVENT_ID, EXPORT_END, EXPORT_START, Splitter
from tap_fullstory.keys import EventKeyer

START, END = "2024-01-01T00:00:00Z", "2024-01-01T06:00:00Z"


def rows(n: int = 600) -> list[dict]:
    out = []
    for i in range(n):
        second = i // 3  # groups of 3 rows share an EventStart; every 7th group has a true repeat
        row = {"EventStart": f"2024-01-01T00:{second // 60:02d}:{second % 60:02d}.000Z",
               "EventType": "click", "UserId": 10**15 + i % 5, "SessionId": 7, "PageId": i % 4,
               "PageDuration": i, f"evt_n{i % 3}_int": i, "user_plan_str": "pro"}
        if second % 7 == 0:
            row["UserId"], row["PageId"], row["PageDuration"] = 1, 1, 0
        out.append(row)
    return out


def expected(data: list[dict]) -> list[dict]:
    splitter, keyer, out = Splitter(mobile=False), EventKeyer(), []
    for row in data:
        cols, custom = splitter.split(dict(row))
        cols[EVENT_ID] = keyer.key(cols)
        cols[CUSTOM_VARS], cols[EXPORT_START], cols[EXPORT_END] = custom, START, END
        out.append(cols)
    return out


def encoder() -> output.ChunkEncoder:
    return output.ChunkEncoder("events", "2024-01-02T00:00:00+00:00", Splitter(mobile=False),
                               START, END, True, ())


def run(tmp_path: Path, body: bytes, capfd: pytest.CaptureFixture[str]) -> tuple[int, bool, list[dict]]:
    path = tmp_path / "export.ndjson.gz"
    path.write_bytes(body)
    written, complete = output.write_ndjson_parallel(str(path), encoder())
    lines = capfd.readouterr().out.splitlines()
    records = [orjson.loads(line) for line in lines]
    assert all(r["type"] == "RECORD" and r["stream"] == "events" for r in records)
    return written, complete, [r["record"] for r in records]


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(output, "CHUNK_BYTES", 2_000)  # ~10 rows a chunk: many chunks, both sides


def ndjson(data: list[dict]) -> bytes:
    return b"".join(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) + b"\n" for r in data)


def test_parallel_output_equals_sequential(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    data = rows()
    written, complete, records = run(tmp_path, gzip.compress(ndjson(data)), capfd)
    assert complete and written == len(data)
    assert records == expected(data)
    assert len({r[EVENT_ID] for r in records}) == len(data)  # true repeats keep distinct ids


def test_parallel_output_stops_before_a_malformed_row(tmp_path: Path,
                                                      capfd: pytest.CaptureFixture[str]) -> None:
    data = rows()
    body = ndjson(data).replace(orjson.dumps(data[300], option=orjson.OPT_SORT_KEYS), b"{broken")
    written, complete, records = run(tmp_path, gzip.compress(body), capfd)
    assert not complete and 0 < written <= 300
    assert records == expected(data)[:written]


def test_parallel_output_stops_at_a_truncated_file(tmp_path: Path,
                                                   capfd: pytest.CaptureFixture[str]) -> None:
    data = rows()
    whole = gzip.compress(ndjson(data))
    written, complete, records = run(tmp_path, whole[: len(whole) // 2], capfd)
    assert not complete and written < len(data)
    assert records == expected(data)[:written]


def test_json_arrays_are_left_to_the_sequential_path(tmp_path: Path,
                                                     capfd: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, gzip.compress(orjson.dumps(rows(10))), capfd) == (0, False, [])
