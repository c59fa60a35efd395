"""The BATCH writer: a UTC day's rows into part files (Parquet, Arrow IPC or JSONL), then the
day's manifest: the list of its parts, which the stream sends as one BATCH message, then STATE.

Every window that starts on a UTC day goes into that day's parts, each of at most `part_rows`
rows (an SDK target holds one file in memory at a time, so memory stays bounded whatever the size
of the day); `Plan.peek()` tells when the day's last window is done. Only then is the last part
committed and the day handed out. A failure removes the day's parts, committed or not, so no
manifest ever names a partial file or a partial day.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import time
import typing as t
from dataclasses import dataclass

import orjson

from tap_fullstory.scanner import ChunkRun
from tap_fullstory.writers.columnar import CHUNK_ROWS, ColumnarDayWriter
from tap_fullstory.writers.columns import arrow_schema, selected_properties
from tap_fullstory.writers.encode import default
from tap_fullstory.writers.part_files import ArrowPart, DayFile, ParquetPart, part_names
from tap_fullstory.writers.record_lines import JSONL_FRAME, ChunkEncoder, framed_chunks

if t.TYPE_CHECKING:
    from singer_sdk import Stream

    from tap_fullstory.plan import Plan
    from tap_fullstory.quarantine import Store
    from tap_fullstory.records import RecordMaker
    from tap_fullstory.sdk import StorageTarget
    from tap_fullstory.settings import BatchSettings
    from tap_fullstory.windows import Window

_LINE_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE


class DayWriter(t.Protocol):
    rows: int

    def add(self, record: dict[str, t.Any]) -> None: ...
    def close(self) -> list[str]: ...
    def abort(self, exc: BaseException) -> None: ...


class JsonlDayWriter:
    """Raw records, one JSON object per line (CustomVars stays an object), optionally gzipped, in
    parts of at most `part_rows` lines."""

    def __init__(self, open_part: t.Callable[[int], DayFile], deselected: list[str], gzip: bool,
                 part_rows: int) -> None:
        self._open_part = open_part
        self.part_rows = max(1, part_rows)
        self.flush_rows = min(CHUNK_ROWS, self.part_rows)
        self.deselected = deselected
        self.gzip = gzip
        self.rows = 0
        self._lines: list[bytes] = []
        self._file: DayFile | None = None
        self._out: t.IO[bytes] | None = None
        self._in_part = 0
        self._done: list[DayFile] = []

    def add(self, record: dict[str, t.Any]) -> None:
        for name in self.deselected:  # as the RECORD path does
            record.pop(name, None)
        self._lines.append(orjson.dumps(record, default=default, option=_LINE_OPTIONS))
        self.rows += 1
        if len(self._lines) >= self.flush_rows or self._in_part + len(self._lines) >= self.part_rows:
            self._flush()

    def add_lines(self, data: t.Any, rows: int) -> None:
        """`rows` whole lines at once (`write_lines`: C's buffer or the reference's bytes, each
        line what `add` writes for its record), cut where a part reaches `part_rows`."""
        self._flush()
        self.rows += rows
        room = self.part_rows - self._in_part
        if rows > room:  # a cut (once per part): one copy of the lines to search, sliced after
            text = bytes(data)
            data, start = memoryview(text), 0
            while rows > room:
                end = start - 1
                for _ in range(room):
                    end = text.find(b"\n", end + 1)
                self._write(data[start:end + 1], room)  # fills the part: it is committed
                start, rows, room = end + 1, rows - room, self.part_rows
            data = data[start:]
        if rows:
            self._write(data, rows)

    def _flush(self) -> None:
        if self._lines:
            lines, self._lines = self._lines, []
            self._write(b"".join(lines), len(lines))

    def _write(self, data: t.Any, rows: int) -> None:
        """Whole lines into the open part (opened here), committed once it holds `part_rows`."""
        if self._out is None:
            from zlib_ng import gzip_ng_threaded

            self._file = self._open_part(len(self._done))
            self._out = (t.cast(t.IO[bytes], gzip_ng_threaded.open(self._file.file, "wb", threads=1))
                         if self.gzip else self._file.file)
        self._out.write(data)
        self._in_part += rows
        if self._in_part >= self.part_rows:
            self._commit_part()

    def _commit_part(self) -> None:
        assert self._file is not None and self._out is not None
        if self._out is not self._file.file:
            self._out.close()  # ends the gzip member; the underlying file stays open
        self._file.commit()
        self._done.append(self._file)
        self._file, self._out, self._in_part = None, None, 0

    def close(self) -> list[str]:
        self._flush()
        if self._file is not None:
            self._commit_part()
        return [part.url for part in self._done]

    def abort(self, exc: BaseException) -> None:
        self._lines = []
        if self._out is not None and self._file is not None and self._out is not self._file.file:
            with contextlib.suppress(BaseException):
                self._out.close()
        if self._file is not None:
            self._file.abort(exc)
        for part in self._done:
            part.remove()


def write_lines(path: str, writer: JsonlDayWriter, maker: RecordMaker) -> ChunkRun:
    """One window's NDJSON export into the day's JSONL parts, chunk by chunk: C's lines, or the
    reference's for a chunk C refuses (`record_lines.framed_chunks`, the RECORD path's scan
    with a JSONL frame). Stops (run.complete False, run.written exact) where the window's
    reference must decide: it resumes after the rows written."""
    run = ChunkRun()
    encoder = ChunkEncoder(JSONL_FRAME, maker, writer.deselected)
    for data, rows in framed_chunks(path, encoder, run):
        writer.add_lines(data, rows)
    return run


def make_writer(stream: Stream, settings: BatchSettings, storage: StorageTarget,
                first_start: dt.datetime) -> DayWriter:
    """The writer for one day's parts, per the validated batch settings (files opened on the
    first row)."""
    prefix = storage.prefix or ""

    def opener(ext: str) -> t.Callable[[int], DayFile]:
        name = part_names(prefix, stream.name, first_start, ext)
        return lambda index: DayFile(storage, name(index))

    if settings.format == "jsonl":
        gz = settings.compression == "gzip"
        keep = set(selected_properties(stream))
        deselected = [n for n in stream.schema["properties"] if n not in keep]
        return JsonlDayWriter(opener("jsonl.gz" if gz else "jsonl"), deselected, gz,
                              settings.part_rows)
    schema, kinds = arrow_schema(stream)
    part_format: t.Callable[[t.IO[bytes]], t.Any]
    if settings.format == "arrow":
        codec = {"zstd": "zstd", "lz4": "lz4", "none": None}[settings.compression]
        part_format = lambda file: ArrowPart(file, schema, codec)  # noqa: E731
    else:
        part_format = lambda file: ParquetPart(file, schema)  # noqa: E731
    ext = "arrow" if settings.format == "arrow" else "parquet"
    return ColumnarDayWriter(opener(ext), part_format, schema, kinds, settings.part_rows,
                             all_names=stream.schema["properties"])


@dataclass
class Day:
    """A written day: its windows (to bookmark now), its committed parts (none: no rows)."""

    windows: list[Window]
    urls: list[str]
    rows: int
    begun: float


def write_days(plan: Plan, open_writer: t.Callable[[dt.datetime], DayWriter],
               write_window: t.Callable[[Window, DayWriter], None], store: Store | None
               ) -> t.Iterator[Day]:
    """Each UTC day of the plan, once its parts (and its quarantine files) are committed. An
    exception aborts the day: its parts are removed and the error propagates."""
    writer: DayWriter | None = None
    done: list[Window] = []  # the day's windows; bookmarked only once its parts are committed
    begun = time.monotonic()
    for window in plan:
        if writer is None:
            writer = open_writer(window.start)
            begun = time.monotonic()
        try:
            write_window(window, writer)
            done.append(window)
            following = plan.peek()
            if following is not None and following.day == window.day:
                continue
            urls = writer.close()
            if store is not None:  # the day's quarantine files, once its parts are committed
                store.flush()
        except BaseException as exc:
            writer.abort(exc)
            if store is not None:
                store.discard()
            raise
        day = Day(done, urls, writer.rows, begun)
        writer, done = None, []
        yield day


@contextlib.contextmanager
def quiet_gc() -> t.Iterator[None]:
    """Fewer cyclic-GC passes while a day streams through (~8 % of the run otherwise): every row
    allocates a few short-lived dicts, and each full pass rescans every long-lived object."""
    thresholds = gc.get_threshold()
    gc.freeze()  # the SDK, modules, settings: never garbage, never rescanned
    gc.set_threshold(50_000, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
