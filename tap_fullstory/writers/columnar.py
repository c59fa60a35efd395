"""The columnar day writer (Parquet or Arrow IPC): a day's rows into part files of at most
`part_rows` rows, in bounded memory, from the reference's records or from the C scanner's batches.

A day is written as part files, each committed when full, because an SDK target reads a whole
file into memory; the formats differ only in the file each part is (`part_files`).
"""

from __future__ import annotations

import collections
import contextlib
import threading
import typing as t

import pyarrow as pa

from tap_fullstory import scanner
from tap_fullstory.fields import EXPORT_END, EXPORT_START
from tap_fullstory.scanner import ChunkRun, Fallback
from tap_fullstory.writers.columns import TS_TYPE, Converter, Kind, NativeChunks

if t.TYPE_CHECKING:
    from tap_fullstory.records import RecordMaker
    from tap_fullstory.writers.part_files import DayFile, PartFile

#: Rows per Parquet row group: large enough for good compression and scans, small enough that
#: memory stays flat whatever the size of the day.
ROW_GROUP_ROWS = 100_000
#: Rows converted from Python objects to Arrow at a time (bounds the Python-object working set).
CHUNK_ROWS = 25_000


class ColumnarDayWriter:
    """Streams a day's records into part files of at most `part_rows` rows each.

    Each record is scattered into per-column lists as it arrives (one pass over a dict that is
    still in cache; the dict is then free), `CHUNK_ROWS` rows at a time become Arrow arrays.
    Batches (those, or ready-made ones from `add_batch`) go to a writer thread (`_RowGroupSink`)
    that cuts exact row groups and encodes and compresses them (pyarrow releases the GIL there).
    A full part is finished and committed here, on the caller's thread, before the next opens.
    """

    def __init__(self, open_part: t.Callable[[int], DayFile],
                 part_format: t.Callable[[t.IO[bytes]], PartFile], schema: pa.Schema,
                 kinds: list[Kind], part_rows: int,
                 row_group_rows: int = ROW_GROUP_ROWS, all_names: t.Iterable[str] = ()) -> None:
        self._open_part = open_part
        self._part_format = part_format
        self.part_rows = max(1, part_rows)
        self.row_group_rows = max(1, min(row_group_rows, self.part_rows))
        self.chunk_rows = min(CHUNK_ROWS, self.row_group_rows)
        self.schema = schema
        self.kinds = kinds
        self.names = schema.names
        self._ignored = [n for n in all_names if n not in set(self.names)]  # deselected
        self.converter = Converter()
        self.rows = 0
        self._n = 0
        self._cols: dict[str, list[t.Any]] = self._new_columns()
        self._file: DayFile | None = None
        self._part: PartFile | None = None
        self._sink: _RowGroupSink | None = None
        self._left = 0  # rows the open part still takes
        self._done: list[DayFile] = []  # committed parts

    def _new_columns(self) -> dict[str, list[t.Any]]:
        size = self.chunk_rows
        cols = {name: [None] * size for name in self.names}
        sink: list[t.Any] = [None] * size
        cols.update(dict.fromkeys(self._ignored, sink))
        return cols

    def add(self, record: dict[str, t.Any]) -> None:
        i = self._n
        cols = self._cols
        try:
            for key, value in record.items():
                cols[key][i] = value
        except KeyError:  # a key outside the schema (never from the stream): ignore it
            for key, value in record.items():
                col = cols.get(key)
                if col is not None:
                    col[i] = value
        self._n = i + 1
        if self._n >= self.chunk_rows:
            self._convert()

    def _convert(self) -> None:
        n, cols = self._n, self._cols
        if not n:
            return
        self._n, self._cols = 0, self._new_columns()
        convert = self.converter.convert
        arrays = [convert(name, kind, cols[name] if n == self.chunk_rows else cols[name][:n])
                  for name, kind in zip(self.names, self.kinds, strict=True)]
        del cols
        self._put(pa.RecordBatch.from_arrays(arrays, schema=self.schema))

    def add_batch(self, batch: pa.RecordBatch) -> None:
        """Rows already in Arrow form (the C scanner), after any rows added one by one. Row
        groups and parts stay exactly as long as on the per-record path."""
        self._convert()
        if batch.num_rows:
            self._put(batch)

    def _put(self, batch: pa.RecordBatch) -> None:
        while batch.num_rows:
            if self._sink is None:
                self._file = self._open_part(len(self._done))
                self._part = self._part_format(self._file.file)
                self._sink = _RowGroupSink(self._part, self.schema, self.row_group_rows)
                self._left = self.part_rows
            take = min(self._left, batch.num_rows)
            self._sink.put(batch if take == batch.num_rows else batch.slice(0, take))
            self.rows += take
            self._left -= take
            batch = batch.slice(take)
            if not self._left:
                self._commit_part()

    def _commit_part(self) -> None:
        assert self._sink is not None and self._part is not None and self._file is not None
        self._sink.finish()
        self._part.close()
        self._file.commit()
        self._done.append(self._file)
        self._sink = self._part = self._file = None

    def close(self) -> list[str]:
        """Write the rest and commit; the day's part URLs (none when the day had no rows)."""
        self._convert()
        if self._sink is not None:
            self._commit_part()
        return [part.url for part in self._done]

    def abort(self, exc: BaseException) -> None:
        """Drop the open part and remove the committed ones: no manifest will name them."""
        if self._sink is not None:
            with contextlib.suppress(BaseException):
                self._sink.finish(discard=True)
        if self._file is not None:
            self._file.abort(exc)
        for part in self._done:
            part.remove()


class _RowGroupSink:
    """Batches in, row groups of exactly `size` rows out, written on a thread of its own.

    The caller waits only when `size // 4` rows are queued: at most a row group being written
    plus a quarter of one queued are held, so memory stays flat, and the caller's work overlaps
    the encoding instead of waiting for each row group in turn.
    """

    def __init__(self, writer: PartFile, schema: pa.Schema, size: int) -> None:
        self._writer, self._schema, self._size = writer, schema, size
        self._limit = max(1, size // 4)
        self._queue: collections.deque[pa.RecordBatch | None] = collections.deque()
        self._queued = 0
        self._error: BaseException | None = None
        self._discard = False
        self._done = False  # the thread has stopped (finished, discarded or failed)
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="parquet-day", daemon=True)
        self._thread.start()

    def put(self, batch: pa.RecordBatch | None) -> None:
        with self._cond:
            while self._queued >= self._limit and self._error is None and not self._done:
                self._cond.wait()
            if self._error is not None:
                raise self._error
            self._queue.append(batch)
            self._queued += batch.num_rows if batch is not None else 0
            self._cond.notify_all()

    def finish(self, *, discard: bool = False) -> None:
        """Write what is left (or drop it) and stop the thread; raises the writer's error."""
        self._discard = discard
        with contextlib.suppress(BaseException):
            self.put(None)
        self._thread.join()
        if self._error is not None and not discard:
            raise self._error

    def _run(self) -> None:
        pending: list[pa.RecordBatch] = []
        rows = 0
        try:
            while True:
                with self._cond:
                    while not self._queue:
                        self._cond.wait()
                    batch = self._queue.popleft()
                    self._queued -= batch.num_rows if batch is not None else 0
                    self._cond.notify_all()
                if self._discard:
                    return
                if batch is None:  # the end: the last, shorter row group
                    if rows:
                        self._writer.write(
                            pa.Table.from_batches(pending, schema=self._schema), self._size)
                    return
                pending.append(batch)
                rows += batch.num_rows
                while rows >= self._size:
                    table = pa.Table.from_batches(pending, schema=self._schema)
                    rest = table.slice(self._size)
                    pending, rows = rest.to_batches(), rest.num_rows
                    self._writer.write(table.slice(0, self._size), self._size)
                    del table
        except BaseException as exc:
            with self._cond:
                self._error = exc
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()


def write_columns(path: str, writer: ColumnarDayWriter, maker: RecordMaker) -> ChunkRun:
    """One window's NDJSON export into the day's columnar writer, chunk by chunk: C's batch, or
    the reference's records for a chunk C refuses (`scanner` decompresses and scans ahead).
    Stops (run.complete False, run.written exact) where the window's reference must decide
    (`scanner.STOP`, a JSON array too): it resumes after the rows written."""
    run = ChunkRun()
    window_ts = {name: pa.scalar(value).cast(TS_TYPE) for name, value in
                 ((EXPORT_START, maker.export_start), (EXPORT_END, maker.export_end))}
    splitter = maker.splitter
    columns = NativeChunks(writer.schema, splitter.column_names, maker.fitter,
                           use_keys=maker.use_keys, window_ts=window_ts)
    try:
        for chunk, after, scanned in scanner.scanned_chunks(path, splitter, columns.scan):
            run.chunks += 1
            try:
                batch = columns.batch(scanned.result())
            except Fallback as why:
                run.fallbacks[str(why)] += 1
                records = list(maker.chunk_records(chunk, after))  # whole chunk or nothing
                for record in records:
                    writer.add(record)
                run.written += len(records)
                continue
            writer.add_batch(batch)
            run.written += batch.num_rows
    except scanner.STOP:
        return run
    run.complete = True
    return run
