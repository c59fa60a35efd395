"""The RECORD writer: Singer messages on a buffered stdout, and a window's RECORD lines, from
C (`scanner`) where it can prove them identical, else from the reference (`records.RecordMaker`).

The SDK's default writer flushes stdout after every message and conforms each record against the
schema; at hundreds of thousands of events per export that dominates the run. Records built from
the field catalogue are already JSON-native, so when no stream map or flattening is configured
they are written straight to a buffered stdout. STATE (and every other message) flushes first,
so a STATE line is never seen before the records it covers.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import io
import os
import sys
import typing as t

import orjson
from singer_sdk.singerlib.encoding.simple import SimpleSingerWriter

from tap_fullstory import scanner, sdk
from tap_fullstory.fields import CUSTOM_VARS, EVENT_ID, EXPORT_END, EXPORT_START
from tap_fullstory.keys import IDENTITY_FIELDS
from tap_fullstory.scanner import ChunkRun, Fallback, FloatCheck, Owned
from tap_fullstory.writers.encode import default

if t.TYPE_CHECKING:
    from tap_fullstory.records import RecordMaker

_OPTIONS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS


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
        return orjson.dumps(message.to_dict(), default=default).decode()

    def write_message(self, message: t.Any) -> None:
        out = _stdout()
        out.write(orjson.dumps(message.to_dict(), default=default, option=_OPTIONS))
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
            out.write(head + dumps(record, default=default) + tail)
            count += 1
        return count


def fast_path_allowed(stream: t.Any) -> bool:
    """True when the SDK's per-record work would change nothing (`sdk.records_pass_unchanged`)
    and our writer is in place."""
    return (isinstance(sdk.message_writer(stream), FastSingerWriter)
            and sdk.records_pass_unchanged(stream))


def utc_now_text() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


def record_line_parts(stream: str, extracted: str) -> tuple[bytes, bytes]:
    """What surrounds a record's JSON in a RECORD line (the SDK's key order)."""
    dumps = orjson.dumps
    return (b'{"type":"RECORD","stream":' + dumps(stream) + b',"record":',
            b',"time_extracted":' + dumps(extracted) + b"}\n")


# --- a window's RECORD lines, chunk by chunk: C, or the reference for a chunk C refuses ------


#: A JSONL day part's frame around each record: nothing before it, a newline after it.
JSONL_FRAME = (b"", b"\n")


class ChunkEncoder:
    """A chunk of NDJSON lines -> its lines through the reference (`RecordMaker`), exactly as the
    window's per-record path writes them (deselected properties dropped). Each record's JSON is
    framed by `frame`: a RECORD message's head and tail (`record_line_parts`), or `JSONL_FRAME`
    for a JSONL day part."""

    def __init__(self, frame: tuple[bytes, bytes], maker: RecordMaker, drop: t.Sequence[str]
                 ) -> None:
        self.head, self.tail = frame
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
            out.append(dumps(record, default=default))
        if not out:
            return b"", 0
        # one join instead of two concatenations per row
        return self.head + (self.tail + self.head).join(out) + self.tail, len(out)


class NativeRecords:
    """Per window: a chunk's RECORD lines from C, byte for byte what `ChunkEncoder.encode`
    writes (the record's keys in the row's order, EventId, CustomVars, the export window)."""

    def __init__(self, encoder: ChunkEncoder, known: list[str]) -> None:
        """`known`: Splitter's columns, each typed as the misfit rule types it (`fits`),
        deselected ones too: their misfits go to CustomVars as on the per-record path."""
        drop = set(encoder.drop)
        maker = encoder.maker
        self._fitter, self._known = maker.fitter, known
        self._spec = tuple((name.encode(), scanner.KIND_CODES[maker.fitter.kind(name)], True,
                            name not in drop) for name in known)
        self._identity = (tuple(known.index(name) for name in IDENTITY_FIELDS)
                          if maker.use_keys else None)
        window = {EXPORT_START: maker.export_start, EXPORT_END: maker.export_end}
        self._record = (encoder.head, encoder.tail, EVENT_ID not in drop, CUSTOM_VARS not in drop,
                        *(None if name in drop else orjson.dumps(window[name])
                          for name in (EXPORT_START, EXPORT_END)))
        self._floats = FloatCheck()

    def scan(self, chunk: t.Any, after: t.Any
             ) -> tuple[int, Owned, bytes, tuple[int, ...]] | str:
        """The C pass (on the parse thread); a str is its refusal."""
        result = scanner.split(chunk, self._spec, self._identity, after, self._record)
        if isinstance(result, str):
            return result
        return result[0], result[2], result[4], result[5]

    def lines(self, scanned: tuple[int, Owned, bytes, tuple[int, ...]] | str
              ) -> tuple[t.Any, int]:
        """(RECORD lines, rows); Fallback when C refused the chunk or a float would differ.
        The lines are C's buffer itself (ctypes view); it is freed with the view. The chunk's
        misfits are counted with the window's."""
        if isinstance(scanned, str):
            raise Fallback(scanned)
        rows, (address, size, owner), floats, misfits = scanned
        self._floats.check(floats)
        self._fitter.add_counts(self._known, misfits)
        view = (ctypes.c_char * size).from_address(address)
        view._owner = owner  # type: ignore[attr-defined]  # keeps the C buffer alive
        return view, rows


def framed_chunks(path: str, encoder: ChunkEncoder, run: ChunkRun) -> t.Iterator[tuple[t.Any, int]]:
    """(lines, rows) of an NDJSON export, chunk by chunk in order, from the C scanner (which
    decompresses and scans ahead on its threads); a chunk C refuses is encoded by the reference
    (`encoder`). `run` counts a chunk's rows once the caller has taken them. Ends early
    (run.complete False, run.written exact) where the window's reference must decide
    (`scanner.STOP`): it resumes after the rows written."""
    splitter = encoder.maker.splitter
    records = NativeRecords(encoder, splitter.column_names)
    try:
        for chunk, after, scanned in scanner.scanned_chunks(path, splitter, records.scan):
            run.chunks += 1
            try:
                data, rows = records.lines(scanned.result())
            except Fallback as why:
                run.fallbacks[str(why)] += 1
                data, rows = encoder.encode(chunk, after)
            yield data, rows
            run.written += rows
    except scanner.STOP:
        return
    run.complete = True


def write_records(path: str, encoder: ChunkEncoder) -> ChunkRun:
    """RECORD lines of an NDJSON export (`framed_chunks`), in order, to stdout: this thread
    writes while the scanner works ahead."""
    run = ChunkRun()
    fd = _raw_stdout()
    if fd is None:
        return run
    for data, _rows in framed_chunks(path, encoder, run):
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    return run


def _raw_stdout() -> int | None:
    """stdout's file descriptor, ready for RECORD lines written past the buffered writer (both
    buffers flushed, so nothing is reordered), or None: stdout is not a descriptor."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None
    sys.stdout.flush()
    _stdout().flush()
    return fd
