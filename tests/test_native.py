"""The C scanner (`tap_fullstory._columns` via `scanner`) against the per-record path.

The per-record path (`RecordMaker`: orjson, Splitter, EventKeyer; the day writer's `add`; ChunkEncoder for
RECORD lines) is the reference: on any input, what the scanner writes must equal it bit for bit,
and what the scanner cannot prove identical it must refuse (the chunk then takes the reference).
Both paths are built in tests/fuzz/paths.py; hostile input and arguments are in
test_native_hostile.py, the fuzzer's corpus replay in test_native_corpus.py.
"""

from __future__ import annotations

import json
import random
import typing as t

import orjson
import pytest

from tap_fullstory import scanner
from tap_fullstory.testing.fixtures import needs_c_scanner
from tap_fullstory.writers import record_lines
from tests.fuzz.harness import Harness
from tests.fuzz.paths import MODES, Paths, record_encoder
from tests.test_batches import _bits, _day_file

pytestmark = needs_c_scanner

STRINGS = ["plain", "", 'quote " inside', "back\\slash", "new\nline", "tab\t", "ctl\x01\x1f",
           "del\x7f", "slash /", "caf\u00e9", "emoji \U0001F600", "sep \u2028", "comma, \"x\"",
           "x" * 300]
CUSTOM = ["user_plan_str", "evt_count_int", "page_ltv_real", "user_tags_strs", "user_vip_bool",
          "CustomVars", "customvars", "user_n\u00e4me_str", "evt_empty", "page_nested_ints"]


def _value(rng: random.Random) -> t.Any:
    kind = rng.randrange(9)
    if kind == 0:
        return rng.choice(STRINGS)
    if kind == 1:
        return rng.choice([0, -1, 7, 2**53 + 1, -(2**63), 2**64 - 1, 10**17])
    if kind == 2:
        return rng.choice([0.5, -0.0, 1e-7, 1e21, 123456789.123456789, 3.0, 0.1 + 0.2])
    if kind == 3:
        return rng.choice([True, False, None])
    if kind == 4:
        return [rng.choice(STRINGS[:6]), rng.randrange(100)]
    if kind == 5:
        return []
    if kind == 6:
        return [[1, 2], ["a"]]
    return rng.choice(STRINGS)


def _row(rng: random.Random, i: int) -> dict[str, t.Any]:
    second = i // 4  # a few rows per EventStart; some identical: ordinals
    row: dict[str, t.Any] = {
        "EventStart": f"2024-01-01T00:{second // 60:02d}:{second % 60:02d}.{i % 4 * 200:03d}Z",
        "EventType": rng.choice(["click", "navigate", "load"]),
        "UserId": rng.choice([7, 2**53 + 3]), "SessionId": 11, "PageId": rng.randrange(3),
        "EventPageOffset": rng.randrange(3), "EventTargetText": rng.choice(STRINGS),
        "PageStart": "2024-01-01T00:00:00.000Z", "PageUrl": rng.choice(STRINGS),
        "EventCumulativeLayoutShift": rng.choice([0.25, 1, None, 0.1 + 0.2]),
        "PageDuration": rng.choice([5, None]),
    }
    for name in rng.sample(CUSTOM, rng.randrange(5)):
        row[name] = _value(rng)
    if rng.random() < 0.2:
        del row["EventType"]
    return row


def _raw(rng: random.Random, row: dict[str, t.Any]) -> str:
    """The row's JSON text, sometimes written the way another encoder would."""
    text = json.dumps(row, ensure_ascii=rng.random() < 0.1, separators=(",", ":"))
    mutation = rng.randrange(150)  # ~6 % of rows: most chunks stay clean
    if mutation == 0:
        text = text.replace(",", ", ").replace(":", " : ", 1)  # blanks between tokens
    elif mutation == 1:
        text = text.replace("/", "\\/")  # an escape orjson never writes
    elif mutation == 2:
        text = text[:-1] + ',"eventtype":"x"}'  # a known field in another case
    elif mutation == 3:
        text = text[:-1] + ',"SessionId":12}'  # a duplicate key
    elif mutation == 4:
        text = text[:-1] + ',"user_\u212a_str":1}'  # the Kelvin sign lower-cases to k
    elif mutation == 5:
        text = text[:-1] + ',"page_obj":{"a":1}}'  # a nested object
    elif mutation == 6:
        text = text.replace('"PageStart":"2024-01-01T00:00:00.000Z"',
                            '"PageStart":"2024-01-01T01:00:00+01:00"')  # not FullStory's form
    elif mutation == 7:
        text = text[:-1] + ',"evt_big_int":123456789012345678901}'  # beyond int64
    elif mutation == 8:
        text = text[:-1] + ',"user_float_real":1E+2}'  # orjson writes 100.0
    return text


def _cut(lines: list[str], size: int = 3_000) -> t.Iterator[bytes]:
    """Chunks of at least `size` bytes, cut only where EventStart changes (as the tap cuts)."""
    def start(line: str) -> t.Any:
        try:
            return orjson.loads(line).get("EventStart")
        except (orjson.JSONDecodeError, AttributeError):
            return None

    chunk: list[str] = []
    for line in lines:
        if sum(map(len, chunk)) >= size and start(line) != start(chunk[-1]):
            yield "".join(x + "\n" for x in chunk).encode()
            chunk = []
        chunk.append(line)
    yield "".join(x + "\n" for x in chunk).encode()


def _lines(seed: int) -> list[str]:
    """400 random rows (seed 0: as orjson writes them; else ~6 % mutated), repeats included."""
    rng = random.Random(seed)
    rows = [_row(rng, i) for i in range(400)]
    for i in range(0, 400, 37):  # true repeats: identical rows, one EventStart
        rows[i + 1] = dict(rows[i])
    return [_raw(rng, row) if seed else json.dumps(row, ensure_ascii=False,
                                                   separators=(",", ":")) for row in rows]


@pytest.mark.parametrize("seed", range(6))
def test_scanner_writes_what_the_per_record_path_writes(seed: int) -> None:
    """Every mode (Parquet and RECORD, web and mobile, with and without EventId, deselected
    fields), every buffer form: each chunk C takes equals the reference bit for bit."""
    harness = Harness(guarded_capacity=64 << 10)
    for chunk in _cut(_lines(seed)):
        harness.check(chunk)
    for mode in MODES:  # the scanner took chunks (this is not the refusal alone)...
        assert harness.stats[f"{mode.name}: accepted"] > 0
    if seed:  # ...and refused those it cannot prove
        assert sum(harness.stats[f"{mode.name}: refused"] for mode in MODES) > 0


@pytest.mark.parametrize("seed", range(6))
def test_day_file_with_the_scanner_equals_the_reference(tmp_path, seed) -> None:
    """The same through `columnar.write_columns`: C's chunks and the reference's mixed in
    one day file."""
    lines = _lines(seed)
    fast, run = _day_file(tmp_path, lines, fast=True, chunk_bytes=3_000)
    slow, _ = _day_file(tmp_path, lines, fast=False)
    assert fast.schema.equals(slow.schema)
    assert fast.num_rows == slow.num_rows == 400
    assert _bits(fast) == _bits(slow)
    assert run.chunks > sum(run.fallbacks.values())  # the scanner wrote chunks itself
    if seed:
        assert run.fallbacks  # and refused the chunks it cannot prove


def _scanner() -> t.Any:
    return Paths(MODES[0]).columns  # Parquet, web fields, EventId


ROW = '{"EventStart":"2024-01-01T00:00:01.000Z","EventType":"click","UserId":7%s}'


@pytest.mark.parametrize(("extra", "reason"), [
    (',"UserId":8', "duplicate key"),
    (',"eventtype":"x"', "known field in another case"),
    (',"user_\\"q_str":1', "escaped key"),
    (',"page_obj":{"a":1}', "nested object"),
    (',"evt_n_int":123456789012345678901', "integer beyond 64 bits"),
    (',"PageId":18446744073709551616', "integer beyond 64 bits"),
    (',"EventCumulativeLayoutShift":-9223372036854775809', "integer beyond 64 bits"),
    (',"PageStart":"2024-01-01 00:00:00.000Z"', "timestamp not in FullStory's form"),
    (',"PageUrl":"\\ud800"', "lone surrogate"),
    (',"PageUrl":"a\\u0000b"', "NUL character"),
    (',"user_tags_strs":["ok",["\\u0000"]]', "NUL character"),
    (',"PageUrl":"x', "control character in a string"),
])
def test_scanner_refuses_what_it_cannot_prove(extra: str, reason: str) -> None:
    scanned = _scanner().scan((ROW % extra).encode() + b"\n", None)
    assert scanned == reason


@pytest.mark.parametrize("extra", ['"EventStart":"yesterday"', '"EventStart":""',
                                   '"EventStart":5'])
def test_scanner_refuses_a_misfit_event_start_with_event_ids(extra: str) -> None:
    """EventIds key EventStart as exported; C keys its parsed value: it cannot key these."""
    row = "{" + extra + ',"EventType":"click"}\n'
    assert _scanner().scan(row.encode(), None) == "EventStart does not fit"


MISFITS = (',"PageId":"12","IndvId":12.0,"SessionId":9223372036854775808,"PageDuration":""'
           ',"PageNumErrors":1.5,"UserCreated":"yesterday","SessionStart":"","PageStart":7'
           ',"PageUrl":["a",1],"PageIp":true,"EventCumulativeLayoutShift":9007199254740993'
           ',"EventFirstInputDelay":-1.25,"PageName":false,"LoadEventTime":[]')


@pytest.mark.parametrize("mode", MODES, ids=lambda mode: mode.name)
def test_scanner_applies_the_misfit_rule_as_the_reference(mode) -> None:
    """Every kind of misfit, taken by C (not refused) and equal to the reference, counts too."""
    chunk = ((ROW % MISFITS) + "\n" + (ROW % "") + "\n").encode()
    paths = Paths(mode)
    got = paths.scanner(chunk)
    assert got[0] == "rows", got
    c_counts = paths.encoder.maker.fitter.take_counts()
    assert got == paths.reference(chunk)
    ref_counts = paths.encoder.maker.fitter.take_counts()
    assert c_counts == ref_counts
    assert c_counts == dict.fromkeys(
        ["PageId", "IndvId", "SessionId", "PageNumErrors", "UserCreated", "PageStart", "PageUrl",
         "PageIp", "EventCumulativeLayoutShift", "EventFirstInputDelay", "PageName",
         "LoadEventTime"], 1)


def test_scanner_refuses_rows_out_of_order() -> None:
    late = ROW % "" + "\n" + ROW.replace("01.000Z", "00.500Z") % "" + "\n"
    assert _scanner().scan(late.encode(), None) == "rows out of EventStart order"
    assert _scanner().scan((ROW % "").encode(), "2024-01-01T00:00:02.000Z") == \
        "rows out of EventStart order"


def test_scanner_event_ids_across_blake2b_block_sizes() -> None:
    """EventIds equal EventKeyer's for identity texts of every length around BLAKE2b's 128-byte
    blocks (0..300 characters of EventTargetText), repeats included."""
    rows = [{"EventStart": "2024-01-01T00:00:01.000Z", "UserId": 7,
             "EventTargetText": "\u00e9" * (n % 7) + "x" * n} for n in range(300)]
    rows += rows[:5]  # repeats: ordinals 1
    chunk = b"".join(orjson.dumps(r) + b"\n" for r in rows)
    paths = Paths(MODES[0])
    scanned = paths.scanner(chunk)
    assert scanned[0] == "rows", scanned
    assert scanned == paths.reference(chunk)


# --- RECORD mode: record_lines.write_records against the Python encoder -----------------------------

def _encoder(drop: t.Sequence[str] = (), use_keys: bool = True) -> t.Any:
    return record_encoder(mobile=False, use_keys=use_keys, drop=tuple(drop))


def _write_records(tmp_path, capfd, body: bytes, *, by_c: int = 10,
                   **kwargs: t.Any) -> tuple[int, bool, bytes]:
    path = tmp_path / "export.ndjson.gz"
    path.write_bytes(body)
    run = record_lines.write_records(str(path), _encoder(**kwargs))
    # C wrote at least `by_c` chunks itself: a scanner that refused every chunk would pass the
    # comparisons (the reference writing everything) and prove nothing about C.
    assert run.chunks - sum(run.fallbacks.values()) >= by_c, run.summary()
    return run.written, run.complete, capfd.readouterr().out.encode()


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scanner, "CHUNK_BYTES", 3_000)  # many chunks: C and Python ones mixed


@pytest.mark.parametrize("seed", range(6))
def test_record_lines_equal_the_python_encoder(tmp_path, capfd, small_chunks, seed) -> None:
    """Byte for byte what the reference (`ChunkEncoder.encode`: `RecordMaker` + orjson) writes,
    with deselected properties and without EventId too."""
    import gzip

    rng = random.Random(seed)
    rows = [_row(rng, i) for i in range(400)]
    for i in range(0, 400, 37):
        rows[i + 1] = dict(rows[i])
    text = "".join(_raw(rng, row) + "\n" for row in rows).encode()
    kwargs: dict[str, t.Any] = {
        "drop": ("PageUrl", "CustomVars", "ExportEnd") if seed % 2 else (),
        "use_keys": seed % 3 != 0,
    }
    expected, n = _encoder(**kwargs).encode(text, None)
    written, complete, out = _write_records(tmp_path, capfd, gzip.compress(text), **kwargs)
    assert (written, complete) == (n, True) and n == 400
    assert out == expected


def test_record_lines_stop_before_a_malformed_row(tmp_path, capfd, small_chunks) -> None:
    import gzip

    rng = random.Random(7)
    lines = [json.dumps(_row(rng, i), ensure_ascii=False) for i in range(400)]
    lines[300] = "{broken"
    good = "".join(line + "\n" for line in lines[:300]).encode()
    written, complete, out = _write_records(
        tmp_path, capfd, gzip.compress("".join(line + "\n" for line in lines).encode()))
    assert not complete and 0 < written <= 300
    expected, _ = _encoder().encode(good, None)
    assert out == b"".join(expected.splitlines(keepends=True)[:written])


def test_record_lines_stop_at_a_truncated_file(tmp_path, capfd, small_chunks) -> None:
    import gzip

    rng = random.Random(8)
    text = "".join(json.dumps(_row(rng, i), ensure_ascii=False) + "\n" for i in range(400))
    body = gzip.compress(text.encode())
    written, complete, out = _write_records(tmp_path, capfd, body[: len(body) * 2 // 3], by_c=0)
    assert not complete and written < 400
    expected, _ = _encoder().encode(text.encode(), None)
    assert out == b"".join(expected.splitlines(keepends=True)[:written])


def test_tap_record_mode_same_with_and_without_the_scanner(make_emulator) -> None:
    """End to end through the tap: the C RECORD writer and the reference (c_scanner=false) emit
    the same records and states."""
    from tests.tapio import run_tap

    emu = make_emulator(start="2024-01-01T00:00:00Z", days=1, events_per_hour=400, seed=5)
    config = {"api_key": emu.api_key, "api_url": emu.base_url,
              "start_date": "2024-01-01T00:00:00Z", "end_date": "2024-01-02T00:00:00Z",
              "export_window": "6h", "poll_interval": 0.01}
    fast = run_tap(config)
    slow = run_tap({**config, "c_scanner": False})
    assert "C scanner in use" in fast.stderr and "C scanner off" in slow.stderr
    assert fast.returncode == slow.returncode == 0
    assert len(fast.records) == len(slow.records) > 1000
    assert fast.records == slow.records  # the record payloads (time_extracted differs per run)
    assert "took the per-record path" not in fast.stderr  # C wrote every chunk of every window
    def bookmarks(run: t.Any) -> list[str]:
        return [s["bookmarks"]["events"]["replication_key_value"] for s in run.states]

    assert bookmarks(fast) == bookmarks(slow) == [
        "2024-01-01T06:00:00Z", "2024-01-01T12:00:00Z", "2024-01-01T18:00:00Z",
        "2024-01-02T00:00:00Z", "2024-01-02T00:00:00Z"]


# --- NUL characters: refused by C, stripped or kept by the reference ------------------------


def _nul_lines(seed: int) -> list[str]:
    """400 random rows as `_lines` writes them, about one in 15 with NUL characters: in a string
    column, in a custom var, in a list inside one (json.dumps writes them as \\u0000)."""
    rng = random.Random(seed)
    rows = [_row(rng, i) for i in range(400)]
    for i in range(0, 400, 37):
        rows[i + 1] = dict(rows[i])
    for row in rows:
        place = rng.randrange(45)
        if place == 0:
            row["EventTargetText"] = "bad\x00text"
        elif place == 1:
            row["user_note_str"] = "\x00"
        elif place == 2:
            row["user_tags_strs"] = ["a\x00b", ["\x00\x00"]]
    return [_raw(rng, row) for row in rows]


def _nul_encoder(strip: bool) -> t.Any:
    from tap_fullstory.records import RecordMaker
    from tap_fullstory.writers.record_lines import ChunkEncoder, record_line_parts
    from tests.fuzz.paths import WINDOW

    maker = RecordMaker(mobile=False, use_keys=True, export_start=WINDOW[0],
                        export_end=WINDOW[1], strip_nul=strip)
    return ChunkEncoder(record_line_parts("events", "2024-01-02T00:00:00+00:00"), maker, ())


@pytest.mark.parametrize("strip", [True, False], ids=["strip", "keep"])
@pytest.mark.parametrize("seed", range(3))
def test_record_lines_with_nul_equal_the_reference(tmp_path, capfd, small_chunks, seed,
                                                   strip) -> None:
    """nul_characters strip and keep: byte for byte the reference's RECORD lines; C wrote the
    chunks without NUL itself and refused every chunk with one."""
    import gzip

    text = "".join(line + "\n" for line in _nul_lines(seed)).encode()
    expected, n = _nul_encoder(strip).encode(text, None)
    path = tmp_path / "export.ndjson.gz"
    path.write_bytes(gzip.compress(text))
    run = record_lines.write_records(str(path), _nul_encoder(strip))
    out = capfd.readouterr().out.encode()
    assert (run.written, run.complete, n) == (400, True, 400)
    assert out == expected
    assert run.fallbacks["NUL character"] > 0 and run.chunks > sum(run.fallbacks.values())
    assert (b"\\u0000" in out) is not strip


@pytest.mark.parametrize("strip", [True, False], ids=["strip", "keep"])
def test_day_file_with_nul_equals_the_reference(tmp_path, strip) -> None:
    lines = _nul_lines(4)
    fast, run = _day_file(tmp_path, lines, fast=True, chunk_bytes=3_000, strip_nul=strip)
    slow, _ = _day_file(tmp_path, lines, fast=False, strip_nul=strip)
    assert fast.num_rows == slow.num_rows == 400
    assert _bits(fast) == _bits(slow)
    assert run.fallbacks["NUL character"] > 0 and run.chunks > sum(run.fallbacks.values())
    texts = fast.column("EventTargetText").to_pylist()
    assert ("badtext" in texts, "bad\x00text" in texts) == (strip, not strip)


def test_event_ids_do_not_depend_on_nul_characters_setting(tmp_path, capfd, small_chunks) -> None:
    """EventId hashes the values as exported: the same RECORD EventIds under strip and keep."""
    text = "".join(line + "\n" for line in _nul_lines(5)).encode()
    ids = []
    for strip in (True, False):
        lines, _ = _nul_encoder(strip).encode(text, None)
        ids.append([orjson.loads(line)["record"]["EventId"] for line in lines.splitlines()])
    assert ids[0] == ids[1] and len(set(ids[0])) == 400
