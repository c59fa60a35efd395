"""Fast Singer output: orjson serialisation, buffered stdout, and a direct RECORD path.

The SDK's default writer flushes stdout after every message and conforms each record against the
schema; at hundreds of thousands of events per export that dominates the run. Records built from
the field catalogue are already JSON-native, so when no stream map or flattening is configured
they are written straight to a buffered stdout. STATE (and every other message) flushes first,
so a STATE line is never seen before the records it covers.
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
import os
import sys
import typing as t

import orjson
from singer_sdk.singerlib.encoding.simple import SimpleSingerWriter

if t.TYPE_CHECKING:
    from tap_fullstory.records import RecordMaker

_OPTIONS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS


def _default(value: t.Any) -> t.Any:
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _stdout() -> t.BinaryIO:
    """The binary stdout, or an adapter when stdout was replaced by a text-only stream."""
    buffer = getattr(sys.stdout, "buffer", None)
    return buffer if buffer is not None else _TextAdapter(sys.stdout)  # type: ignore[return-value]


class _TextAdapter:
    def __init__(self, text: t.TextIO) -> None:
        self.text = text

    def write(self, data: bytes) -> None:
        self.text.write(data.decode())

    def flush(self) -> None:
        self.text.flush()


class FastSingerWriter(SimpleSingerWriter):
    """Writes messages with orjson to a buffered binary stdout; flushes on everything but RECORD."""

    def serialize_message(self, message: t.Any) -> str:
        return orjson.dumps(message.to_dict(), default=_default).decode()

    def write_message(self, message: t.Any) -> None:
        out = _stdout()
        out.write(orjson.dumps(message.to_dict(), default=_default, option=_OPTIONS))
        if getattr(message, "type", None) != "RECORD":
            out.flush()

    @staticmethod
    def write_records(
        stream: str, records: t.Iterable[dict], extracted: str, drop: t.Sequence[str] = ()
    ) -> int:
        """Write RECORD lines without building message objects (the hot path); returns the count."""
        out = _stdout()
        dumps = orjson.dumps
        head, tail = record_line_parts(stream, extracted)
        count = 0
        for record in records:
            for name in drop:
                record.pop(name, None)
            out.write(head + dumps(record, default=_default) + tail)
            count += 1
        return count


def fast_path_allowed(stream: t.Any) -> bool:
    """True when the SDK's per-record work would change nothing (`sdk.records_pass_unchanged`)
    and our writer is in place."""
    from tap_fullstory import sdk

    return (isinstance(sdk.message_writer(stream), FastSingerWriter)
            and sdk.records_pass_unchanged(stream))


def utc_now_text() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


# --- chunked RECORD writing (the C scanner's RECORD mode: native.write_records) ---------------

def record_line_parts(stream: str, extracted: str) -> tuple[bytes, bytes]:
    """What surrounds a record's JSON in a RECORD line (the SDK's key order)."""
    dumps = orjson.dumps
    return (b'{"type":"RECORD","stream":' + dumps(stream) + b',"record":',
            b',"time_extracted":' + dumps(extracted) + b"}\n")


class ChunkEncoder:
    """A chunk of NDJSON lines -> its RECORD lines through the reference (`RecordMaker`), exactly
    as the window's per-record path writes them (deselected properties dropped)."""

    def __init__(self, stream: str, extracted: str, maker: RecordMaker, drop: t.Sequence[str]
                 ) -> None:
        self.head, self.tail = record_line_parts(stream, extracted)
        self.maker = maker
        self.drop = tuple(drop)

    def encode(self, chunk: t.Any, after: t.Any) -> tuple[bytes, int]:
        """(RECORD lines, rows) of a chunk; raises where the window's reference would stop."""
        dumps = orjson.dumps
        drop = self.drop
        out = []
        for record in self.maker.chunk_records(chunk, after):
            for name in drop:
                record.pop(name, None)
            out.append(dumps(record, default=_default))
        if not out:
            return b"", 0
        # one join instead of two concatenations per row
        return self.head + (self.tail + self.head).join(out) + self.tail, len(out)


def raw_stdout(path: str) -> int | None:
    """stdout's file descriptor, ready for RECORD lines written past the buffered writer (both
    buffers flushed, so nothing is reordered), or None: stdout is not a descriptor, or the export
    is a JSON array (the chunked writers read NDJSON only)."""
    from tap_fullstory.sources.decode import is_json_array

    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None
    if is_json_array(path):
        return None
    sys.stdout.flush()
    _stdout().flush()
    return fd


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
