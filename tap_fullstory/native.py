"""The C scanner, `tap_fullstory._columns` (issue #8): what both of its uses share, and RECORD mode.

The extension is optional (built from `csrc/` when a C compiler is there). It reads each NDJSON
row once and returns either Arrow buffers (Parquet day batches: `native_columns`) or whole
RECORD lines (`write_records`). Python checks what C leaves to it (float texts against orjson's
own shortest form); anything not provably identical to the per-record path raises `Fallback` and
that chunk takes the Python paths. No pyarrow here: RECORD mode does not load it.
"""

from __future__ import annotations

import collections
import ctypes
import os
import queue
import threading
import typing as t
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait

import orjson

from tap_fullstory.keys import IDENTITY_FIELDS

if t.TYPE_CHECKING:
    from tap_fullstory.output import ChunkEncoder

try:
    from tap_fullstory import _columns  # type: ignore[attr-defined]
except ImportError:  # no C compiler at install time: the pure-Python paths do the work
    _columns = None
if _columns is not None and getattr(_columns, "API", None) != 2:  # an old build of csrc/: unused
    _columns = None

AVAILABLE = _columns is not None
#: Set TAP_FULLSTORY_NATIVE=0 to leave the scanner out (the Python paths then take every chunk).
ENABLED = AVAILABLE and os.environ.get("TAP_FULLSTORY_NATIVE", "1") != "0"
#: Decompressed bytes per read on the C paths (cut into CHUNK_BYTES chunks without copying).
BLOCK = 8 << 20
#: A buffer C allocated: (address, size, owner that frees it).
Owned = tuple[int, int, object]


def start_text(after: t.Any) -> bytes | str | None:
    """The EventStart before a chunk, as C takes it (bytes, or None: no row or a null one); a
    str is the reason C cannot take it."""
    if after is None:
        return None
    return after.encode() if isinstance(after, str) else "EventStart before the chunk is not text"


class Fallback(Exception):
    """This chunk needs another path (its values could differ here)."""


class FloatCheck:
    """Each float text C copied must be the one orjson writes for its value (C cannot tell)."""

    def __init__(self) -> None:
        self._known: dict[bytes, bool] = {}

    def check(self, floats: bytes) -> None:
        if not floats:
            return
        known = self._known
        for text in floats.split(b"\n")[:-1]:
            ok = known.get(text)
            if ok is None:
                try:
                    ok = orjson.dumps(orjson.loads(text)) == text
                except orjson.JSONDecodeError:
                    ok = False
                if len(known) < 100_000:
                    known[text] = ok
            if not ok:
                raise Fallback(f"float text {text[:40]!r}")


_END = object()
_DECODE: ThreadPoolExecutor | None = None


def _decode_pool() -> ThreadPoolExecutor:
    """One decode thread for the process (see `arrow_chunks._parse_pool` for why)."""
    global _DECODE
    if _DECODE is None:
        _DECODE = ThreadPoolExecutor(1, thread_name_prefix="export-decode")
    return _DECODE


def background(items: t.Iterable[t.Any], depth: int) -> t.Iterator[t.Any]:
    """`items` produced on a thread of its own, `depth` ahead (decompressing and cutting the
    export while the caller works: ISA-L releases the GIL). Errors reach the caller in order;
    closing the iterator early stops the thread."""
    out: queue.Queue[t.Any] = queue.Queue(depth)
    stop = threading.Event()

    def put(item: t.Any) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            put((_END, exc))
            return
        put((_END, None))

    done = _decode_pool().submit(produce)
    try:
        while True:
            item, exc = out.get()
            if item is _END:
                if exc is not None:
                    raise exc
                return
            yield item
    finally:
        stop.set()
        done.result()


_PARSE: ThreadPoolExecutor | None = None


def parse_pool() -> ThreadPoolExecutor:
    """One parse thread for the process, kept across windows and days: a new thread per window
    lands on another malloc arena, and a long backfill's memory then grows with the windows
    (measured: 350 MB for the first 1M-row window, ~480 MB after a few)."""
    global _PARSE
    if _PARSE is None:
        _PARSE = ThreadPoolExecutor(1, thread_name_prefix="chunk-parse")
    return _PARSE


def parsed_ahead(chunks: t.Iterable[tuple[t.Any, t.Any]], parse: t.Callable[[t.Any, t.Any], t.Any]
                 ) -> t.Iterator[tuple[t.Any, t.Any, Future[t.Any]]]:
    """(chunk, after, future of parse(chunk, after)), the next chunk's parse started before this
    one is handed out (windows are written one at a time: one shared parse thread)."""
    pool = parse_pool()
    pending: collections.deque[tuple[t.Any, t.Any, Future[t.Any]]] = collections.deque()
    try:
        for chunk, after in chunks:
            pending.append((chunk, after, pool.submit(parse, chunk, after)))
            if len(pending) > 1:
                yield pending.popleft()
        while pending:
            yield pending.popleft()
    finally:  # stopped early: nothing of this window may still run on the shared thread
        for _, _, future in pending:
            future.cancel()
        futures_wait([future for _, _, future in pending])


# --- RECORD mode ------------------------------------------------------------------------------


class NativeRecords:
    """Per window: a chunk's RECORD lines from C, byte for byte what `output.ChunkEncoder.encode`
    writes (the record's keys in the row's order, EventId, CustomVars, the export window)."""

    def __init__(self, encoder: ChunkEncoder, known: list[str], timestamps: t.Collection[str]
                 ) -> None:
        """`known`: Splitter's columns; `timestamps`: those Splitter normalises (C requires
        FullStory's form, which Splitter passes through untouched)."""
        import orjson

        from tap_fullstory.fields import CUSTOM_VARS, EVENT_ID, EXPORT_END, EXPORT_START

        drop = set(encoder.drop)
        self._spec = tuple((name.encode(), "t" if name in timestamps else "s",
                            name in timestamps, name not in drop) for name in known)
        self._identity = (tuple(known.index(name) for name in IDENTITY_FIELDS)
                          if encoder.use_keys else None)
        window = {EXPORT_START: encoder.export_start, EXPORT_END: encoder.export_end}
        self._record = (encoder.head, encoder.tail, EVENT_ID not in drop, CUSTOM_VARS not in drop,
                        *(None if name in drop else orjson.dumps(window[name])
                          for name in (EXPORT_START, EXPORT_END)))
        self._floats = FloatCheck()

    def scan(self, chunk: t.Any, after: t.Any) -> tuple[int, Owned, bytes] | str:
        """The C pass (on the parse thread); a str is its refusal."""
        start = start_text(after)
        if isinstance(start, str):
            return start
        result = _columns.split(chunk, self._spec, self._identity, start, self._record)
        if result[0] is None:
            return t.cast(str, result[1])
        return result[0], result[2], result[4]

    def lines(self, scanned: tuple[int, Owned, bytes] | str) -> tuple[t.Any, int]:
        """(RECORD lines, rows); Fallback when C refused the chunk or a float would differ.
        The lines are C's buffer itself (ctypes view); it is freed with the view."""
        if isinstance(scanned, str):
            raise Fallback(scanned)
        rows, (address, size, owner), floats = scanned
        self._floats.check(floats)
        view = (ctypes.c_char * size).from_address(address)
        view._owner = owner  # type: ignore[attr-defined]  # keeps the C buffer alive
        return view, rows


def write_records(path: str, encoder: ChunkEncoder) -> tuple[int, bool]:
    """RECORD lines of an NDJSON export through the C scanner, in order, to stdout: (rows written,
    complete). One thread decompresses and cuts, one scans, this one writes; a chunk C refuses
    is encoded by `encoder` (Python). Stops, with an exact count, where the sequential path must
    decide (a malformed row, rows out of EventStart order, a truncated file...), as
    `output.write_ndjson_parallel` does."""
    from tap_fullstory.fields import Splitter
    from tap_fullstory.output import _chunks, _write_all, raw_stdout
    from tap_fullstory.sources.decode import body_blocks

    fd = raw_stdout(path)
    if fd is None:
        return 0, False
    splitter: Splitter = encoder.splitter
    records = NativeRecords(encoder, splitter.column_names, splitter.timestamp_names)
    written = 0
    try:
        chunks = background(_chunks(body_blocks(path, BLOCK), encoder, views=True), depth=1)
        for chunk, after, scanned in parsed_ahead(chunks, records.scan):
            try:
                data, rows = records.lines(scanned.result())
            except Fallback:
                try:
                    data, rows = encoder.encode(bytes(chunk), after)
                except Exception:
                    return written, False
            _write_all(fd, data)
            written += rows
    except Exception:  # _Stop, a truncated or corrupt file, a closed pipe...
        return written, False
    return written, True
