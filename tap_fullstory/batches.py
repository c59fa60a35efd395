"""BATCH mode for the events stream: per UTC day, part files (Parquet, Arrow IPC or JSONL), then
one BATCH message listing them, then STATE.

The SDK's default batcher infers Parquet types per chunk (breaks on the CustomVars object column),
skips catalog selection and writes a BATCH per file, so the stream overrides `get_batches` and
calls `day_batches` here. Every window that starts on a UTC day goes into that day's parts, each
of at most `batch_size` rows (an SDK target holds one file in memory at a time, so memory stays
bounded whatever the size of the day); `Plan.peek()` tells when the day's last window is done.
Only then is the last part committed and the manifest yielded: the SDK writes BATCH and then
STATE (bookmark = the day's end, or as far as the day went). A failure removes the day's parts,
committed or not, so no manifest ever names a partial file or a partial day.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import secrets
import time
import typing as t

import orjson

from tap_fullstory import sdk
from tap_fullstory.output import _default
from tap_fullstory.parquet import (
    CHUNK_ROWS,
    ArrowPart,
    ColumnarDayWriter,
    ParquetPart,
    arrow_schema,
    selected_properties,
)

if t.TYPE_CHECKING:
    from tap_fullstory.sdk import BaseBatchFileEncoding, BatchConfig, StorageTarget
    from tap_fullstory.streams import EventsStream
    from tap_fullstory.windows import Window

_LINE_OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE


# --- day writers ----------------------------------------------------------------------------


class DayFile:
    """One day's file in the batch storage; committed by `close`, removed by `abort`.

    `StorageTarget.open` writes inside an fsspec transaction (local: a temp file moved into place
    on commit; S3/GCS: the upload is completed on commit), so an aborted file never appears.
    """

    def __init__(self, storage: StorageTarget, name: str) -> None:
        self.storage = storage
        self.name = name
        self.url = storage.get_url(name)
        self._stack = contextlib.ExitStack()
        self.file: t.IO[bytes] = self._stack.enter_context(storage.open(name, "wb"))

    def commit(self) -> str:
        self._stack.close()
        return self.url

    def remove(self) -> None:
        """Delete a committed part (its day failed: no manifest will name it)."""
        root = getattr(self.storage, "_root_path", None)
        with contextlib.suppress(Exception):
            (root / self.name).unlink()  # type: ignore[operator]

    def abort(self, exc: BaseException) -> None:
        with contextlib.suppress(BaseException):
            self._stack.__exit__(type(exc), exc, exc.__traceback__)
        root = getattr(self.storage, "_root_path", None)
        fs = getattr(root, "fs", None)
        if fs is None:
            return
        with contextlib.suppress(Exception):
            if getattr(fs, "_intrans", False):
                fs.transaction.complete(commit=False)  # discard the deferred (partial) upload
        with contextlib.suppress(Exception):
            path = root / self.name  # type: ignore[operator]
            if path.exists():
                path.unlink()


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
        self._lines.append(orjson.dumps(record, default=_default, option=_LINE_OPTS))
        self.rows += 1
        if len(self._lines) >= self.flush_rows or self._in_part + len(self._lines) >= self.part_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._lines:
            return
        if self._out is None:
            from zlib_ng import gzip_ng_threaded

            self._file = self._open_part(len(self._done))
            self._out = (t.cast(t.IO[bytes], gzip_ng_threaded.open(self._file.file, "wb", threads=1))
                         if self.gzip else self._file.file)
        self._out.write(b"".join(self._lines))
        self._in_part += len(self._lines)
        self._lines = []
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


# --- the stream's get_batches ---------------------------------------------------------------


def part_names(prefix: str, stream: str, first_start: dt.datetime, ext: str
               ) -> t.Callable[[int], str]:
    """Names of one day's parts: unique per run and day (a day cut short is completed later in
    new files), numbered in write order."""
    stem = (f"{prefix}{stream}-{first_start:%Y-%m-%d}-{first_start:%H%M%S}-"
            f"{secrets.token_hex(4)}")
    return lambda index: f"{stem}-part{index + 1:04d}.{ext}"


def make_writer(stream: EventsStream, batch_config: BatchConfig,
                first_start: dt.datetime) -> DayWriter:
    """The writer for one day's parts, per the validated `batch_config` (files opened on the
    first row)."""
    settings = stream.settings.batch
    assert settings is not None
    storage = batch_config.storage
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
    return ColumnarDayWriter(opener(ext), part_format, schema, kinds, stream.logger,
                             settings.part_rows, all_names=stream.schema["properties"])


def day_batches(
    stream: EventsStream, batch_config: BatchConfig, context: t.Any
) -> t.Iterator[tuple[BaseBatchFileEncoding, list[str]]]:
    """Export the plan's windows into one file per UTC day; yield each day's manifest.

    The bookmark moves per window (`complete_window`) but STATE is written only by the SDK
    after each yield, or here for a day without rows, so a STATE never covers a file that is
    not complete. An exception aborts the day: its file is removed and the error propagates.
    """
    with _quiet_gc():
        yield from _day_batches(stream, batch_config, context)


@contextlib.contextmanager
def _quiet_gc() -> t.Iterator[None]:
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


def _day_batches(
    stream: EventsStream, batch_config: BatchConfig, context: t.Any
) -> t.Iterator[tuple[BaseBatchFileEncoding, list[str]]]:
    stream.state_per_window = False
    sdk.write_starting_value(stream, context)
    plan = stream.plan(context)
    writer: DayWriter | None = None
    done: list[Window] = []  # the day's windows; bookmarked only once its file is committed
    begun = time.monotonic()
    for window in plan:
        if writer is None:
            writer = make_writer(stream, batch_config, window.start)
            begun = time.monotonic()
        try:
            direct = _columnar_direct(stream, writer)
            with stream.export(plan, window, direct) as records:
                add = writer.add
                for record in records:
                    add(record)
            done.append(window)
            following = plan.peek()
            if following is not None and following.day == window.day:
                continue
            urls = writer.close()
        except BaseException as exc:
            writer.abort(exc)
            raise
        for finished in done:  # the in-memory bookmark never runs ahead of committed files
            stream.complete_window(finished, context)
        rows, writer, done = writer.rows, None, []
        if not urls:
            stream.logger.info("Day %s: no events; no file, state moves to %s",
                               window.day, window.end.isoformat())
            sdk.write_state(stream)
            continue
        seconds = time.monotonic() - begun
        stream.logger.info("Day %s: %d rows in %d part file(s) (%.1f s, %.0f rows/s)",
                           window.day, rows, len(urls), seconds,
                           rows / seconds if seconds > 0 else 0.0)
        yield batch_config.encoding, urls
    sdk.finalize_state(stream)
    sdk.write_state(stream)


def _columnar_direct(stream: EventsStream, writer: DayWriter
                     ) -> t.Callable[[Window, t.Any], int] | None:
    """The columnar fast path for one window (the C scanner, `native_columns.write_columns`), or
    None: every row through the reference. Where the scanner stops early, the window's reference
    resumes after the rows it wrote (same export, same rows)."""
    if not stream.use_c_scanner or not isinstance(writer, ColumnarDayWriter):
        return None

    def direct(window: Window, spooled: t.Any) -> int:
        from tap_fullstory.native_columns import write_columns

        run = write_columns(spooled.path, writer, stream.record_maker(window))
        stream.log_fallbacks(window, run)
        written = run.written
        if not run.complete:
            add = writer.add
            for record in stream._window_records(window, spooled, emitted=written):
                add(record)
                written += 1
        return written

    return direct
