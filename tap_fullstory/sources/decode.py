"""Streaming decode of export bodies: gzip (sniffed, possibly twice), then NDJSON or one JSON array.

Memory stays flat whatever the export's size: bytes are read in chunks and rows are parsed one by
one. Decompression uses ISA-L (python-isal; zlib-ng when it is missing). `body_blocks` gives the
decompressed body block by block to the C scanner's chunked writers (`scanner`).
"""

from __future__ import annotations

import io
import json
import re
import typing as t

import orjson
from zlib_ng import gzip_ng, zlib_ng

from tap_fullstory import text

try:  # ISA-L inflates about a third faster than zlib-ng; both raise EOFError when truncated
    from isal.igzip import IGzipFile as _GzipFile
    from isal.igzip_lib import IsalError as _InflateError
except ImportError:  # pragma: no cover - isal has wheels for the usual platforms
    _GzipFile = gzip_ng.GzipNGFile  # type: ignore[misc,assignment]
    _InflateError = zlib_ng.error

#: A damaged compressed body (a bad deflate block, a bad header): neither library's error is an
#: OSError, and the body is downloaded again like a truncated one.
_CORRUPT = t.cast("tuple[type[BaseException], ...]", (OSError, _InflateError, zlib_ng.error))

GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 4 << 20
# Between two top-level objects of an array: "}" [ws] "," [ws] "{".
_BETWEEN = re.compile(rb"(\}\s*,\s*\{)")
_MAX_ROW = 256 << 20


class MalformedExportError(ValueError):
    """A row of the export cannot be decoded (or the body is not an export at all); the message
    gives its position. `row` is the row's number, None when the whole body is at fault."""

    def __init__(self, message: str, row: int | None = None) -> None:
        super().__init__(message)
        self.row = row


#: Told about each row that cannot be decoded: (its number, its raw bytes, the cause). It raises
#: (the row stops the export) or returns (the row has been set aside; decoding goes on).
BadRow = t.Callable[[int, bytes, str], None]


def fail_on_bad_row(number: int, raw: bytes, cause: str) -> None:
    raise MalformedExportError(f"row {number} is {cause}", number)


class UnusableRow(ValueError):
    """Raised by a `loads` for a row that decodes but cannot be a record (an individual without
    a valid key): a bad row, its message the cause."""


class NotNDJSONError(ValueError):
    """The body is one JSON array, not NDJSON (`body_blocks`)."""


class TruncatedExportError(ValueError):
    """The compressed body ended early (a truncated gzip stream)."""


def open_body(path: str) -> t.BinaryIO:
    """Open a spooled body, unwrapping gzip layers (transport encoding and/or a .gz file)."""
    raw: t.BinaryIO = open(path, "rb")  # noqa: SIM115 - returned to the caller
    for _ in range(2):
        if raw.peek(2)[:2] != GZIP_MAGIC:  # type: ignore[attr-defined]
            break
        # A gzip file object does not close a fileobj it was given: _Reader closes both layers.
        gz = t.cast(t.BinaryIO, _GzipFile(fileobj=raw, mode="rb"))
        raw = t.cast(t.BinaryIO, io.BufferedReader(t.cast(io.RawIOBase, _Reader(gz, raw)), CHUNK))
    return raw


class _Reader(io.RawIOBase):
    """Adapter giving any binary stream a `readinto`, so it can sit under a BufferedReader (peek)."""

    def __init__(self, inner: t.BinaryIO, under: t.BinaryIO) -> None:
        self._inner = inner
        self._under = under

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: t.Any) -> int:
        data = self._inner.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._inner.close()
        self._under.close()
        super().close()


def iter_rows(path: str, *, skip: int = 0, loads: t.Callable[[bytes], t.Any] = text.loads,
              on_bad: BadRow = fail_on_bad_row) -> t.Iterator[dict[str, t.Any]]:
    """Yield each row of an export file (NDJSON or a JSON array), skipping the first `skip`.
    Rows are numbered from 1 in the file (NDJSON: the line number); a row that cannot be
    decoded goes to `on_bad` and is neither yielded nor counted in `skip`. The reference passes
    `RecordMaker.loads`, which also marks the rows that may hold NUL. A body that begins with
    neither `{` nor `[` and has no row that decodes (an HTML error page, say) is not an export:
    `MalformedExportError` with no row, whatever `on_bad` does with its lines."""
    body: t.BinaryIO | None = None
    bad = 0

    def set_aside(number: int, raw: bytes, cause: str) -> None:
        nonlocal bad
        bad += 1
        on_bad(number, raw, cause)

    try:
        body = open_body(path)
        head = body.peek(64)  # type: ignore[attr-defined]
        first = head.lstrip()[:1]
        rows = (_array_rows(body, loads, set_aside) if first == b"[" else
                _ndjson_rows(body, loads, set_aside))
        decoded = 0
        for decoded, row in enumerate(rows, 1):
            if decoded > skip:
                yield row
        if not decoded and bad and first not in (b"{", b"["):
            raise MalformedExportError(
                f"the export is neither NDJSON nor a JSON array: it begins with {first!r} and none "
                f"of its {bad} line(s) could be decoded")
    except EOFError as exc:
        raise TruncatedExportError(f"the export file is truncated ({exc})") from None
    except _CORRUPT as exc:  # invalid or corrupt compressed data
        raise TruncatedExportError(f"the export file is corrupt ({exc})") from None
    finally:
        if body is not None:
            body.close()


def body_blocks(path: str, block: int = CHUNK) -> t.Iterator[bytes]:
    """The decompressed NDJSON body in blocks of `block` bytes (the last may be shorter); a body
    that is one JSON array raises `NotNDJSONError` before any block (the chunked readers cut
    NDJSON only; `iter_rows` reads both). Every process that reads the same file gets the same
    blocks (the file is opened when iteration starts, so a forked process gets its own). A
    truncated or corrupt body raises `TruncatedExportError` after the blocks before it. Reads the
    innermost layer directly (no `open_body` adapters: they cost a third of the inflate time on
    a big export)."""
    layers: list[t.Any] = []
    try:
        body: t.Any = open(path, "rb")  # noqa: SIM115 - closed below
        layers.append(body)
        for _ in range(2):
            if body.peek(2)[:2] != GZIP_MAGIC:
                break
            body = _GzipFile(fileobj=body, mode="rb")
            layers.append(body)
        data = body.read(block)
        if data[:64].lstrip()[:1] == b"[":
            raise NotNDJSONError("the export is one JSON array")
        while data:
            yield data
            data = body.read(block)
    except EOFError as exc:
        raise TruncatedExportError(f"the export file is truncated ({exc})") from None
    except _CORRUPT as exc:
        raise TruncatedExportError(f"the export file is corrupt ({exc})") from None
    finally:
        for layer in reversed(layers):
            layer.close()


def _ndjson_rows(body: t.BinaryIO, loads: t.Callable[[bytes], t.Any], bad: BadRow
                 ) -> t.Iterator[dict[str, t.Any]]:
    for number, line in enumerate(body, start=1):
        if not line.strip():
            continue
        try:
            row = loads(line)
        except ValueError as exc:  # orjson.JSONDecodeError
            bad(number, line.removesuffix(b"\n"), _invalid(line, exc))
            continue
        if not isinstance(row, dict):
            bad(number, line.removesuffix(b"\n"), "not a JSON object")
            continue
        yield row


def _array_rows(body: t.BinaryIO, loads: t.Callable[[bytes], t.Any], bad: BadRow
                ) -> t.Iterator[dict[str, t.Any]]:
    """Rows of one JSON array, cut at '},{' candidates and confirmed by parsing.

    A cut inside a string can never parse (its prefix ends inside that string, so the parser
    reports "end of data" exactly at its end): such a piece is joined with the next one. Any other
    parse failure is a bad row, located precisely by `_strict`. A bad element without its closing
    brace cannot be told from the element after it: both go to `bad` as one piece.
    """
    acc = b""
    number = 0
    eof = False
    started = False
    while not eof:
        chunk = body.read(CHUNK)
        eof = not chunk
        acc += chunk
        if not started:
            acc = acc.lstrip()
            if not acc and not eof:
                continue
            if not acc.startswith(b"["):
                raise MalformedExportError("the export is not a JSON array")
            acc = acc[1:].lstrip()
            started = True
        parts = _BETWEEN.split(acc)
        acc = parts[0]
        for i in range(1, len(parts), 2):
            candidate = acc + b"}"
            try:
                row = loads(candidate)
            except orjson.JSONDecodeError as exc:
                if _cut_inside_a_string(exc, candidate) and len(acc) <= _MAX_ROW:
                    acc = acc + parts[i] + parts[i + 1]
                    continue
                number = yield from _strict(candidate, number, loads, bad)
                acc = b"{" + parts[i + 1]
                continue
            number += 1
            yield row  # JSON text that parses and ends with "}" is an object
            acc = b"{" + parts[i + 1]
    yield from _finish(acc, number, loads, bad)


def _invalid(raw: bytes, exc: Exception) -> str:
    """Why a row could not be decoded: invalid UTF-8 (where), else the JSON parser's message."""
    if isinstance(exc, UnusableRow):
        return str(exc)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        return f"not valid UTF-8 (byte 0x{raw[bad.start]:02x} at offset {bad.start})"
    # orjson's message has the position in the row; json's (in `_strict`) in the piece: left out
    detail = exc if isinstance(exc, orjson.JSONDecodeError) else getattr(exc, "msg", exc)
    return f"not valid JSON ({detail})"


def _cut_inside_a_string(exc: orjson.JSONDecodeError, piece: bytes) -> bool:
    """The parser stopped at the very end of the piece (orjson counts characters, not bytes)."""
    return exc.pos >= len(piece.decode("utf-8", "surrogateescape"))


def _finish(tail: bytes, number: int, loads: t.Callable[[bytes], t.Any], bad: BadRow
            ) -> t.Iterator[dict[str, t.Any]]:
    """Parse what is left once the body has ended: the last rows and the closing bracket."""
    text = tail.rstrip()
    closed = text.endswith(b"]")
    text = text[:-1].rstrip() if closed else text
    if text:
        number = yield from _strict(text, number, loads, bad)
    if not closed:
        raise MalformedExportError(f"the JSON array is not closed after row {number}")


def _strict(text: bytes, number: int, loads: t.Callable[[bytes], t.Any], bad: BadRow
            ) -> t.Generator[dict[str, t.Any], None, int]:
    """Decode comma-separated rows one by one (Python's json finds where each ends; `loads`
    decides); the first invalid one and the rest of the piece, which has no reliable row
    boundary, go to `bad` as one row. Returns the number of the last row."""
    decoder = json.JSONDecoder()
    # surrogateescape: one character per undecodable byte, so the raw bytes can be given back
    as_text = text.decode("utf-8", errors="surrogateescape")
    position = 0
    while True:
        while position < len(as_text) and as_text[position] in " \t\r\n":
            position += 1
        number += 1
        try:
            _, end = decoder.raw_decode(as_text, position)
            row = loads(as_text[position:end].encode("utf-8", "surrogateescape"))
            rest = as_text[end:].lstrip()
            if rest and not rest.startswith(","):
                raise ValueError("text after the row")
        except ValueError as exc:  # json's and orjson's JSONDecodeError too
            cause = _invalid(as_text[position:].encode("utf-8", "surrogateescape"), exc)
        else:
            cause = "" if isinstance(row, dict) else "not a JSON object"
        if cause:
            bad(number, as_text[position:].encode("utf-8", "surrogateescape"), cause)
            return number
        yield row
        if not rest:
            return number
        position = len(as_text) - len(rest) + 1
