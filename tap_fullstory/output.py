"""Fast Singer output: orjson serialisation, buffered stdout, and a direct RECORD path.

The SDK's default writer flushes stdout after every message and conforms each record against the
schema; at hundreds of thousands of events per export that dominates the run. Records built from
the field catalogue are already JSON-native, so when no stream map or flattening is configured
they are written straight to a buffered stdout. STATE (and every other message) flushes first,
so a STATE line is never seen before the records it covers.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import io
import os
import signal
import struct
import sys
import typing as t

import orjson
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.singerlib.encoding.simple import SimpleSingerWriter

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
        head = b'{"type":"RECORD","stream":' + dumps(stream) + b',"record":'
        tail = b',"time_extracted":' + dumps(extracted) + b"}\n"
        count = 0
        for record in records:
            for name in drop:
                record.pop(name, None)
            out.write(head + dumps(record, default=_default) + tail)
            count += 1
        return count


def fast_path_allowed(stream: t.Any) -> bool:
    """True when the SDK's per-record work would change nothing: the default map, no flattening,
    and our writer in place."""
    maps = stream.stream_maps
    return (
        isinstance(stream._tap.message_writer, FastSingerWriter)
        and len(maps) == 1
        and type(maps[0]) is SameRecordTransform
        and maps[0].stream_alias == stream.name
        and not maps[0].flattening_enabled
    )


def utc_now_text() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


# --- RECORD lines on two cores ----------------------------------------------------------------

#: Smallest spooled export (bytes on disk) worth a second process (the variable is for tests).
PARALLEL_MIN_BYTES = int(os.environ.get("TAP_FULLSTORY_PARALLEL_MIN_BYTES", 8 << 20))
#: Bytes per chunk (about 3,000 rows); a chunk ends where EventStart changes, so EventId
#: ordinals never span two chunks.
CHUNK_BYTES = 4 << 20
#: A chunk that finds no EventStart change within this many bytes stops the parallel phase.
MAX_CHUNK_BYTES = 64 * CHUNK_BYTES
_TOKEN = struct.Struct("<qq")  # (chunk index, rows written; -1 = not written, stop)
_BAD = object()


def line_event_start(splitter: t.Any, line: bytes) -> t.Any:
    """The EventStart the keyer would see for this line, or _BAD (blank, not an object...)."""
    try:
        row = orjson.loads(line)
    except orjson.JSONDecodeError:
        return _BAD
    if not isinstance(row, dict):
        return _BAD
    return splitter.split(row)[0].get("EventStart")


class ChunkEncoder:
    """Rows of one NDJSON chunk -> the chunk's RECORD lines, exactly as the sequential path writes
    them (split, EventId, CustomVars, export window, deselected properties dropped)."""

    def __init__(self, stream: str, extracted: str, splitter: t.Any, export_start: str,
                 export_end: str, use_keys: bool, drop: t.Sequence[str]) -> None:
        dumps = orjson.dumps
        self.head = b'{"type":"RECORD","stream":' + dumps(stream) + b',"record":'
        self.tail = b',"time_extracted":' + dumps(extracted) + b"}\n"
        self.splitter = splitter
        self.export_start, self.export_end = export_start, export_end
        self.use_keys = use_keys
        self.drop = tuple(drop)

    def event_start(self, line: bytes) -> t.Any:
        return line_event_start(self.splitter, line)

    def encode(self, chunk: bytes, after: t.Any) -> tuple[bytes, int]:
        """(RECORD lines, rows) of a chunk of NDJSON lines; raises on anything the sequential path
        would stop at."""
        from tap_fullstory.fields import CUSTOM_VARS, EVENT_ID, EXPORT_END, EXPORT_START
        from tap_fullstory.keys import EventKeyer

        loads, dumps = orjson.loads, orjson.dumps
        split = self.splitter.split
        key = EventKeyer(after=after).key if self.use_keys else None
        drop = self.drop
        start, end = self.export_start, self.export_end
        out = []
        for line in chunk.split(b"\n"):
            if not line.strip():
                continue
            row = loads(line)
            if not isinstance(row, dict):
                raise ValueError("not a JSON object")
            cols, custom = split(row)
            if key is not None:
                cols[EVENT_ID] = key(cols)
            cols[CUSTOM_VARS] = custom
            cols[EXPORT_START] = start
            cols[EXPORT_END] = end
            for name in drop:
                cols.pop(name, None)
            out.append(dumps(cols, default=_default))
        if not out:
            return b"", 0
        # one join instead of two concatenations per row
        return self.head + (self.tail + self.head).join(out) + self.tail, len(out)


def _chunks(blocks: t.Iterable[bytes], encoder: ChunkEncoder, *, views: bool = False
            ) -> t.Iterator[tuple[t.Any, t.Any]]:
    """(NDJSON lines, EventStart of the row before them) per chunk: at least CHUNK_BYTES, cut only
    between two valid rows whose EventStart differs. Deterministic: both processes cut alike.
    Raises _Stop when no cut is found within MAX_CHUNK_BYTES. `views`: chunks are memoryviews
    of the decompressed blocks (no copy) instead of bytes."""
    es = encoder.event_start
    buf = b""
    after: t.Any = None
    for data in blocks:
        buf = buf + data if buf else data
        pos = 0
        while len(buf) - pos > CHUNK_BYTES:
            i = buf.find(b"\n", pos + CHUNK_BYTES)
            cut = 0
            if i >= 0:
                begin = buf.rfind(b"\n", pos, i)
                prev = es(buf[pos if begin < 0 else begin + 1 : i])
                while (j := buf.find(b"\n", i + 1)) >= 0:
                    now = es(buf[i + 1 : j])
                    if prev is not _BAD and now is not _BAD and now != prev:
                        cut = i + 1
                        break
                    prev, i = now, j
            if not cut:
                if len(buf) - pos > MAX_CHUNK_BYTES:
                    raise _Stop
                break
            yield (memoryview(buf)[pos:cut] if views else buf[pos:cut]), after
            after, pos = prev, cut
        buf = buf[pos:]
    if buf:
        yield buf, after


class _Stop(Exception):
    """Ends the parallel phase; the sequential path takes over after the rows written."""


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


def write_ndjson_parallel(path: str, encoder: ChunkEncoder) -> tuple[int, bool]:
    """Write the RECORD lines of an NDJSON export with two processes: (rows written, complete).

    Both processes decompress the whole file (cheap next to the per-row work) and cut it into the
    same chunks; the parent encodes the even chunks, a forked child the odd ones, and each writes
    its chunks to stdout in turn (a token passed over two pipes keeps the order). On any problem
    (a malformed row, rows out of EventStart order, a truncated file, ...) both stop after the last
    chunk written in order, and the count returned tells the sequential path where to resume: it
    then meets the same problem and handles it as it always does. (0, False) when not applicable
    (a JSON array, no fork, stdout is not a file descriptor): nothing was written.
    """
    from tap_fullstory.sources.decode import body_blocks

    if not hasattr(os, "fork"):
        return 0, False
    stdout_fd = raw_stdout(path)
    if stdout_fd is None:
        return 0, False
    blocks = body_blocks(path)  # opened on first use: each process has its own file offset
    to_child_r, to_child_w = os.pipe()
    to_parent_r, to_parent_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: odd chunks; never returns
        code = 0
        try:
            os.close(to_child_w)
            os.close(to_parent_r)
            _run_side(1, blocks, encoder, stdout_fd, to_child_r, to_parent_w)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(to_child_r)
    os.close(to_parent_w)
    try:
        written, complete = _run_side(0, blocks, encoder, stdout_fd, to_parent_r, to_child_w)
    finally:
        for fd in (to_parent_r, to_child_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    return written, complete


def _run_side(me: int, blocks: t.Iterator[bytes], encoder: ChunkEncoder, fd: int,
              inbox: int, outbox: int) -> tuple[int, bool]:
    """One process's part: encode own chunks, write each after the other's previous chunk.
    Returns the rows written in order by both (exact in the parent; the child's is unused) and
    whether the whole file was written."""
    written = 0
    pending = -1  # index of the other side's last chunk whose token is not yet read

    def wait_other(index: int) -> bool:
        nonlocal written, pending
        data = b""
        while len(data) < _TOKEN.size:
            more = os.read(inbox, _TOKEN.size - len(data))
            if not more:
                return False  # the other side is gone
            data += more
        got, rows = _TOKEN.unpack(data)
        pending = -1
        if got != index or rows < 0:
            return False
        written += rows
        return True

    def send(index: int, rows: int) -> None:
        with contextlib.suppress(OSError):
            os.write(outbox, _TOKEN.pack(index, rows))

    index = -1
    try:
        for index, (chunk, after) in enumerate(_chunks(blocks, encoder)):
            if index % 2 != me:
                pending = index
                continue
            try:
                data, rows = encoder.encode(chunk, after)
            except Exception:
                if index > 0 and not wait_other(index - 1):
                    return written, False
                send(index, -1)
                return written, False
            if index > 0 and not wait_other(index - 1):
                send(index, -1)
                return written, False
            _write_all(fd, data)
            written += rows
            send(index, rows)
    except Exception:  # _Stop, a truncated or corrupt file, a closed pipe...
        if pending >= 0:
            wait_other(pending)
        send(index + 1, -1)
        return written, False
    if pending >= 0 and not wait_other(pending):
        return written, False
    return written, True
