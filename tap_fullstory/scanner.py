"""The C scanner, `tap_fullstory._columns`: the only module that binds it.

The fast path of every mode. The extension is optional (built from `csrc/` when a C compiler is
there). It reads each NDJSON row once and returns either Arrow buffers (the day parts' columns:
`writers.columns`) or whole RECORD lines (`writers.record_lines`); those two are its clients and
hold what differs. Here is what both share: cutting an export into chunks, the threads that
decompress and scan ahead, the checks of what C leaves to Python (float texts against orjson's
own shortest form) and the count of chunks it refused, which then take the reference
(`records.RecordMaker`). No pyarrow here: RECORD mode does not load it.
"""

from __future__ import annotations

import collections
import queue
import threading
import typing as t
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait

import orjson

from tap_fullstory.keys import OutOfOrderError
from tap_fullstory.sources.decode import body_blocks

if t.TYPE_CHECKING:
    from tap_fullstory.fields import Splitter

try:
    from tap_fullstory import _columns  # type: ignore[attr-defined]
except ImportError:  # no C compiler at install time: the pure-Python paths do the work
    _columns = None
if _columns is not None and getattr(_columns, "API", None) != 3:  # an old build of csrc/: unused
    _columns = None

AVAILABLE = _columns is not None
#: Decompressed bytes per read on the C paths (cut into CHUNK_BYTES chunks without copying).
BLOCK = 8 << 20
#: A buffer C allocated: (address, size, owner that frees it).
Owned = tuple[int, int, object]
#: The scanner's code for each catalogue type.
KIND_CODES = {"integer": "i", "number": "f", "string": "s", "date-time": "t"}
#: A column's scan spec: (name, kind, wanted[, ...]) as `columns.c` reads it.
Spec = tuple[tuple[t.Any, ...], ...]


def split(chunk: t.Any, spec: Spec, identity: tuple[int, ...] | None, after: t.Any,
          record: tuple[t.Any, ...] | None = None) -> tuple[t.Any, ...] | str:
    """One C pass over a chunk (releases the GIL); a str is C's refusal (a fixed reason).
    `record` given: RECORD lines (head, tail, flags, window texts); else Arrow buffers."""
    start = start_text(after)
    if isinstance(start, str):
        return start
    result = (_columns.split(chunk, spec, identity, start) if record is None
              else _columns.split(chunk, spec, identity, start, record))
    if result[0] is None:
        return t.cast(str, result[1])
    return t.cast(tuple[t.Any, ...], result)


def start_text(after: t.Any) -> bytes | str | None:
    """The EventStart before a chunk, as C takes it (bytes, or None: no row or a null one); a
    str is the reason C cannot take it."""
    if after is None:
        return None
    return after.encode() if isinstance(after, str) else "EventStart before the chunk is not text"


def status(enabled: bool) -> str:
    """One line for the log: which path writes the rows in this run."""
    if not AVAILABLE:
        return ("C scanner not built (no C compiler at install time): every row takes the "
                "per-record path")
    if not enabled:
        return "C scanner off (setting c_scanner=false): every row takes the per-record path"
    return "C scanner in use; chunks it cannot prove identical take the per-record path"


class Fallback(Exception):
    """This chunk needs the reference (its values could differ here); the message is the reason,
    a fixed text (never row data), so that reasons can be counted."""


class ChunkRun:
    """What a chunked run did: rows written, whether it reached the end, and the chunks the
    reference wrote, per reason."""

    def __init__(self) -> None:
        self.written = 0
        self.complete = False
        self.chunks = 0
        self.fallbacks: collections.Counter[str] = collections.Counter()

    def summary(self) -> str:
        reasons = ", ".join(f"{why}: {n}" for why, n in self.fallbacks.most_common())
        return (f"{sum(self.fallbacks.values())} of {self.chunks} chunk(s) took the per-record "
                f"path ({reasons})")


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
                raise Fallback("float text orjson writes differently")


# --- one export, chunk by chunk ----------------------------------------------------------------

#: Bytes per chunk (about 3,000 rows); a chunk ends where EventStart changes, so EventId
#: ordinals never span two chunks.
CHUNK_BYTES = 4 << 20
#: A chunk that finds no EventStart change within this many bytes stops the chunked phase.
MAX_CHUNK_BYTES = 64 * CHUNK_BYTES
_BAD = object()


def scanned_chunks(path: str, splitter: Splitter, scan: t.Callable[[t.Any, t.Any], t.Any]
                   ) -> t.Iterator[tuple[t.Any, t.Any, Future[t.Any]]]:
    """(chunk, EventStart before it, future of `scan(chunk, after)`) for each chunk of an NDJSON
    export, in order: one thread decompresses and cuts, one scans ahead, the caller writes.
    Raises one of `STOP` where the window's reference must decide (a JSON array before any
    chunk: the reference reads those); it resumes after the rows the caller wrote."""
    return parsed_ahead(background(_chunks(body_blocks(path, BLOCK), splitter), depth=1), scan)


def line_event_start(splitter: t.Any, line: bytes) -> t.Any:
    """The EventStart the keyer would see for this line, or _BAD (blank, not an object...)."""
    try:
        row = orjson.loads(line)
    except orjson.JSONDecodeError:
        return _BAD
    if not isinstance(row, dict):
        return _BAD
    return splitter.split(row)[0].get("EventStart")


def _chunks(blocks: t.Iterable[bytes], splitter: Splitter) -> t.Iterator[tuple[t.Any, t.Any]]:
    """(NDJSON lines, EventStart of the row before them) per chunk: at least CHUNK_BYTES, cut only
    between two valid rows whose EventStart differs (EventId ordinals never span two chunks).
    Raises _Stop when no cut is found within MAX_CHUNK_BYTES. Chunks are read-only memoryviews
    of the decompressed blocks (no copy)."""

    def es(line: bytes) -> t.Any:
        return line_event_start(splitter, line)

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
            yield memoryview(buf)[pos:cut], after
            after, pos = prev, cut
        buf = buf[pos:]
    if buf:
        yield memoryview(buf), after


class _Stop(Exception):
    """Ends the chunked phase; the window's reference takes over after the rows written."""


#: What ends a chunked run early, for the window's reference to resume after the rows written
#: and meet the problem itself: no EventStart change to cut at (`_Stop`), a truncated or
#: corrupt body, a JSON array (`NotNDJSONError`), and what the reference raises on a chunk
#: (invalid JSON or a row that is not an object: ValueError; rows out of EventStart order).
#: Anything else is a bug or an I/O failure and propagates.
STOP: tuple[type[BaseException], ...] = (ValueError, OutOfOrderError, _Stop)


_END = object()
_DECODE: ThreadPoolExecutor | None = None


def _decode_pool() -> ThreadPoolExecutor:
    """One decode thread for the process (see `parse_pool` for why)."""
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
