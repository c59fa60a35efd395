"""sources/decode.py, exactly: rows, row numbers, causes and raw bytes of bad rows, the layers of
gzip, the blocks, the errors. Fast and in-process: the mutation run (`make mutate`) uses these."""

from __future__ import annotations

import gzip
import typing as t
from pathlib import Path

import pytest

from tap_fullstory.sources import decode
from tap_fullstory.sources.decode import (
    MalformedExportError,
    NotNDJSONError,
    TruncatedExportError,
    body_blocks,
    fail_on_bad_row,
    iter_rows,
)

A = b'{"EventStart":"2024-01-01T00:00:01.000Z","n":1}'
B = b'{"EventStart":"2024-01-01T00:00:02.000Z","n":2,"s":"caf\xc3\xa9 },{ x"}'
C = b'{"EventStart":"2024-01-01T00:00:03.000Z","n":3}'


def write(tmp_path: Path, body: bytes, layers: int = 0) -> str:
    for _ in range(layers):
        body = gzip.compress(body)
    path = tmp_path / "export"
    path.write_bytes(body)
    return str(path)


def decoded(path: str, **kwargs: t.Any) -> tuple[list[int], list[tuple[int, bytes, str]]]:
    bad: list[tuple[int, bytes, str]] = []
    rows = [r["n"] for r in iter_rows(path, on_bad=lambda *a: bad.append(a), **kwargs)]
    return rows, bad


# ----------------------------------------------------------------------------- NDJSON


@pytest.mark.parametrize("layers", [0, 1, 2])
def test_ndjson_rows_through_every_gzip_layer(tmp_path, layers) -> None:
    path = write(tmp_path, A + b"\n\n" + B + b"\r\n" + C, layers)
    assert decoded(path) == ([1, 2, 3], [])
    assert decoded(path, skip=2) == ([3], [])
    assert decoded(path, skip=3) == ([], [])


def test_ndjson_bad_rows_have_their_line_numbers_bytes_and_causes(tmp_path) -> None:
    path = write(tmp_path, A + b"\n\n[1,2]\n" + b'{"n":\xff}\n' + b"{nope\n" + C + b"\n")
    rows, bad = decoded(path)
    assert rows == [1, 3]
    assert bad == [
        (3, b"[1,2]", "not a JSON object"),
        (4, b'{"n":\xff}', "not valid UTF-8 (byte 0xff at offset 5)"),
        # orjson's message, with where in the row it stopped
        (5, b"{nope", "not valid JSON (unexpected character, expected a string key: line 1 "
                      "column 2 (char 1))"),
    ]


def test_a_bad_row_fails_by_default_naming_its_row(tmp_path) -> None:
    path = write(tmp_path, A + b"\n{nope\n")
    with pytest.raises(MalformedExportError, match=r"^row 2 is not valid JSON \(") as caught:
        list(iter_rows(path))
    assert caught.value.row == 2
    with pytest.raises(MalformedExportError) as direct:
        fail_on_bad_row(7, b"x", "the cause")
    assert (str(direct.value), direct.value.row) == ("row 7 is the cause", 7)
    assert MalformedExportError("whole body").row is None


def test_skip_does_not_count_bad_rows(tmp_path) -> None:
    path = write(tmp_path, A + b"\n{nope\n" + C + b"\n")
    assert decoded(path, skip=1) == ([3], [(2, b"{nope", decoded(path)[1][0][2])])


# ----------------------------------------------------------------------------- not an export


@pytest.mark.parametrize("body", [b"<html>\n<body>error</body>\n</html>\n", b"  oops\n"])
def test_a_body_that_is_not_an_export(tmp_path, body) -> None:
    bad: list[t.Any] = []
    with pytest.raises(MalformedExportError) as caught:
        list(iter_rows(write(tmp_path, body, 1), on_bad=lambda *a: bad.append(a)))
    lines = len([x for x in body.splitlines() if x.strip()])
    first = body.lstrip()[:1]
    assert str(caught.value) == (f"the export is neither NDJSON nor a JSON array: it begins with "
                                 f"{first!r} and none of its {lines} line(s) could be decoded")
    assert caught.value.row is None and len(bad) == lines


@pytest.mark.parametrize("body", [b"{nope\n", b"[{nope]", b"<x>\n" + A + b"\n", b""])
def test_what_is_still_an_export(tmp_path, body) -> None:
    rows, _ = decoded(write(tmp_path, body))  # no MalformedExportError
    assert rows == ([1] if A in body else [])


# ----------------------------------------------------------------------------- JSON arrays


@pytest.mark.parametrize("layers", [0, 1])
def test_array_rows(tmp_path, layers) -> None:
    path = write(tmp_path, b" \n[ " + A + b" , " + B + b",\n" + C + b" ]\n", layers)
    with pytest.raises(NotNDJSONError):  # the chunked readers take NDJSON only
        next(body_blocks(path))
    assert decoded(path) == ([1, 2, 3], [])
    assert decoded(path, skip=1) == ([2, 3], [])


def test_array_bad_elements(tmp_path) -> None:
    path = write(tmp_path, b"[" + A + b",[1]," + b'{"n":\xff},' + C + b"]")
    rows, bad = decoded(path)
    assert rows == [1, 3]
    # the first invalid element and the rest of its piece (up to the next "},{"): one bad row
    assert bad == [(2, b'[1],{"n":\xff}', "not a JSON object")]


def test_array_element_that_is_not_an_object(tmp_path) -> None:
    rows, bad = decoded(write(tmp_path, b"[" + A + b"," + C + b", 5]"))
    assert rows == [1, 3]
    assert bad == [(3, b"5", "not a JSON object")]


def test_array_bad_element_without_its_closing_brace_takes_its_neighbour(tmp_path) -> None:
    rows, bad = decoded(write(tmp_path, b"[" + A + b',{"n":2,' + C + b"]"))
    assert rows == [1]
    assert [n for n, _, _ in bad] == [2]
    assert bad[0][1] == b'{"n":2,' + C


def test_array_text_after_a_row_is_bad(tmp_path) -> None:
    rows, bad = decoded(write(tmp_path, b"[" + A + b"," + C + b" x]"))
    assert rows == [1]
    assert len(bad) == 1 and bad[0][:2] == (2, C + b" x")


def test_array_that_is_never_closed(tmp_path) -> None:
    with pytest.raises(MalformedExportError) as caught:
        list(iter_rows(write(tmp_path, b"[" + A + b"," + C)))
    assert str(caught.value) == "the JSON array is not closed after row 2"
    assert caught.value.row is None


def test_empty_array(tmp_path) -> None:
    assert decoded(write(tmp_path, b"[ ]")) == ([], [])
    assert decoded(write(tmp_path, b"[]\n")) == ([], [])


def test_array_rows_longer_than_a_read(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(decode, "CHUNK", 7)  # every row and separator cut across reads
    path = write(tmp_path, b"[" + A + b",  " + B + b"," + C + b"]")
    assert decoded(path) == ([1, 2, 3], [])


def test_not_an_array_after_all(tmp_path) -> None:
    from tap_fullstory.sources.decode import _array_rows

    with open(write(tmp_path, b"  " + A), "rb") as body, pytest.raises(
            MalformedExportError, match=r"^the export is not a JSON array$"):
        list(_array_rows(body, decode.text.loads, fail_on_bad_row))
    with open(write(tmp_path, b"\n\n[]"), "rb") as body:
        assert list(_array_rows(body, decode.text.loads, fail_on_bad_row)) == []


# ----------------------------------------------------------------------------- gzip, blocks


def test_body_blocks_refuse_an_array(tmp_path) -> None:
    assert b"".join(body_blocks(write(tmp_path, A + b"\n", 2))) == A + b"\n"
    with pytest.raises(NotNDJSONError, match=r"^the export is one JSON array$"):
        list(body_blocks(write(tmp_path, b" \n  [" + A + b"]", 2)))


@pytest.mark.parametrize("layers", [0, 1, 2])
def test_body_blocks(tmp_path, layers) -> None:
    body = b"".join(A + b"\n" for _ in range(50))
    blocks = list(body_blocks(write(tmp_path, body, layers), block=100))
    assert b"".join(blocks) == body
    assert [len(b) for b in blocks[:-1]] == [100] * (len(blocks) - 1) and 0 < len(blocks[-1]) <= 100


def test_truncated_and_corrupt_bodies(tmp_path) -> None:
    body = gzip.compress(b"".join(A + b"\n" for _ in range(2000)))
    cut = write(tmp_path, body[: len(body) // 2])
    with pytest.raises(TruncatedExportError, match=r"^the export file is truncated \("):
        list(body_blocks(cut))
    with pytest.raises(TruncatedExportError, match=r"^the export file is truncated \("):
        list(iter_rows(cut))
    corrupt = write(tmp_path, body[:20] + b"\xff" * 64 + body[84:])
    with pytest.raises(TruncatedExportError, match=r"^the export file is (corrupt|truncated) \("):
        list(body_blocks(corrupt))
    with pytest.raises(TruncatedExportError, match=r"^the export file is (corrupt|truncated) \("):
        list(iter_rows(corrupt))


@pytest.mark.parametrize(("body", "rows", "bad"), [
    (b"[" + A + b" , 7]", [1], [(2, b"7", "not a JSON object")]),
    (b"[" + A + b",]", [1], [(2, b"", "not valid JSON (Expecting value)")]),
    (b"[" + A + b"," + C + b" x]", [1], [(2, C + b" x", "not valid JSON (text after the row)")]),
    (b"[" + A + b',{"n":2,' + C + b"]", [1],
     [(2, b'{"n":2,' + C, "not valid JSON (Expecting property name enclosed in double quotes)")]),
    (b"[" + A + b',{"n":2,"s":"\xff"} x,' + C + b"]", [1],
     [(2, b'{"n":2,"s":"\xff"} x,' + C, "not valid UTF-8 (byte 0xff at offset 12)")]),
    (b'[{"n":5,"s":"\xff"} , 7]', [],
     [(1, b'{"n":5,"s":"\xff"} , 7', "not valid UTF-8 (byte 0xff at offset 12)")]),
    (b'[\n{"n":1} ,\n\t{"n":2} \r\n]', [1, 2], []),
    (b"[" + A + b", X]", [1], [(2, b"X", "not valid JSON (Expecting value)")]),
])
def test_array_pieces_decoded_one_by_one(tmp_path, body, rows, bad) -> None:
    """The rows of a piece that did not parse as a whole (`_strict`): numbers, exact bytes (also
    invalid UTF-8), causes."""
    assert decoded(write(tmp_path, body)) == (rows, bad)


def test_array_leading_blanks_longer_than_a_read(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(decode, "CHUNK", 4)
    body = b" \n\t " * 5 + b"[   {nope}," + A + b"," + C + b"]"
    assert decoded(write(tmp_path, body)) == (
        [1, 3], [(1, b"{nope}", "not valid JSON (Expecting property name enclosed in double quotes)")])


def test_array_rows_after_a_bad_element_in_the_same_read(tmp_path) -> None:
    d = b'{"EventStart":"2024-01-01T00:00:04.000Z","n":4}'
    rows, bad = decoded(write(tmp_path, b"[" + A + b",{nope}," + C + b"," + d + b"," + A + b"]"))
    assert rows == [1, 3, 4, 1] and [n for n, _, _ in bad] == [2]


def test_at_most_two_gzip_layers(tmp_path) -> None:
    """Transport encoding and a .gz file: a third layer is the body's own content."""
    once = gzip.compress(A + b"\n")
    path = write(tmp_path, gzip.compress(gzip.compress(once)))
    assert b"".join(body_blocks(path)) == once


def test_a_third_gzip_layer_is_not_unwrapped(tmp_path) -> None:
    with pytest.raises(MalformedExportError, match="neither NDJSON nor a JSON array"):
        decoded(write(tmp_path, A + b"\n", 3))


def test_gzip_rows_longer_than_the_buffer(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(decode, "CHUNK", 16)
    assert decoded(write(tmp_path, A + b"\n" + B + b"\n" + C + b"\n", 2)) == ([1, 2, 3], [])
