"""Columnar day batches through the C scanner: NDJSON chunks -> Arrow record batches.

`native` runs `tap_fullstory._columns` (C): the known columns come back as Arrow buffers, plus
the exact text of CustomVars and the EventIds. This module wraps those buffers (no copy) into the
day writer's record batch. A chunk C cannot prove identical goes through the reference
(`records.RecordMaker` -> `ColumnarDayWriter.add`) instead, so the files are the same either way.
"""

from __future__ import annotations

import typing as t

import pyarrow as pa

from tap_fullstory import native
from tap_fullstory.fields import CUSTOM_VARS, EVENT_ID, EXPORT_END, EXPORT_START
from tap_fullstory.keys import IDENTITY_FIELDS
from tap_fullstory.native import (
    KIND_CODES,
    ChunkRun,
    Fallback,
    FloatCheck,
    Owned,
    _columns,
    start_text,
)

if t.TYPE_CHECKING:
    from tap_fullstory.fits import Fitter
    from tap_fullstory.parquet import ColumnarDayWriter
    from tap_fullstory.records import RecordMaker

#: C parses timestamps in FullStory's form to microseconds (any other form: refused).
_ARROW = {"i": pa.int64(), "f": pa.float64(), "s": pa.string(), "t": pa.timestamp("us", tz="UTC")}


def _buffer(owned: Owned) -> pa.Buffer:
    """The C buffer as an Arrow buffer, no copy; it lives as long as an array uses it."""
    address, size, owner = owned
    return pa.foreign_buffer(address, size, base=owner)


class Scanned(t.NamedTuple):
    rows: int
    columns: list[tuple[Owned, ...]]
    custom: tuple[Owned, Owned]
    identity: tuple[Owned, Owned] | None  # EventId: offsets, 32 hex characters per row
    floats: bytes
    misfits: tuple[int, ...]  # per known field: values the misfit rule nulled


class NativeChunks:
    """Per window: the scanner's spec, and the batch for each scanned chunk."""

    def __init__(self, schema: pa.Schema, known: list[str], fitter: Fitter, *,
                 use_keys: bool, window_ts: dict[str, pa.Scalar]) -> None:
        """`known`: every known export field (Splitter's columns, selected or not), each typed
        by `fitter`: the misfit rule applies to every one (their originals go to CustomVars)."""
        self.schema = schema
        self.known = known
        self._fitter = fitter
        self._kinds = {name: KIND_CODES[fitter.kind(name)] for name in known}
        self._spec = tuple((name.encode(), self._kinds[name], True) for name in known)
        self._identity = (tuple(known.index(name) for name in IDENTITY_FIELDS)
                          if use_keys else None)
        self._window_ts = window_ts
        self._floats = FloatCheck()

    def scan(self, chunk: bytes, after: t.Any) -> Scanned | str:
        """The C pass (releases the GIL: runs on a worker thread); a str is its refusal."""
        start = start_text(after)
        if isinstance(start, str):
            return start
        result = _columns.split(chunk, self._spec, self._identity, start)
        if result[0] is None:
            return t.cast(str, result[1])
        return Scanned(*result)

    def batch(self, scanned: Scanned | str) -> pa.RecordBatch:
        """The chunk's record batch (its misfits counted with the window's); Fallback when C
        refused it or a float would differ."""
        if isinstance(scanned, str):
            raise Fallback(scanned)
        n = scanned.rows
        self._floats.check(scanned.floats)
        self._fitter.add_counts(self.known, scanned.misfits)
        arrays: dict[str, pa.Array] = {}
        for name, buffers in zip(self.known, scanned.columns, strict=True):
            kind = self._kinds[name]
            arrays[name] = pa.Array.from_buffers(_ARROW[kind], n, [_buffer(b) for b in buffers])
        custom = pa.Array.from_buffers(pa.string(), n, [None, *map(_buffer, scanned.custom)])
        out: list[pa.Array] = []
        for name in self.schema.names:
            if name == CUSTOM_VARS:
                out.append(pa.ExtensionArray.from_storage(pa.json_(), custom))
            elif name == EVENT_ID:
                if scanned.identity is None:
                    raise Fallback("no EventId")
                out.append(pa.Array.from_buffers(
                    pa.string(), n, [None, *map(_buffer, scanned.identity)]))
            elif name in self._window_ts:
                out.append(pa.repeat(self._window_ts[name], n))
            else:
                out.append(arrays[name])
        return pa.RecordBatch.from_arrays(out, schema=self.schema)


def write_columns(path: str, writer: ColumnarDayWriter, maker: RecordMaker) -> ChunkRun:
    """One window's NDJSON export into the day's columnar writer, chunk by chunk: C's batch, or
    the reference's records for a chunk C refuses. One thread decompresses and cuts, one scans.
    Stops (run.complete False, run.written exact) where the window's reference must decide
    (`native.STOP`): it resumes after the rows written. A JSON array is left to the reference."""
    from tap_fullstory.sources.decode import body_blocks, is_json_array

    run = ChunkRun()
    if is_json_array(path):
        return run
    window_ts = {name: pa.scalar(value).cast(_ARROW["t"]) for name, value in
                 ((EXPORT_START, maker.export_start), (EXPORT_END, maker.export_end))}
    splitter = maker.splitter
    scanner = NativeChunks(writer.schema, splitter.column_names, maker.fitter,
                           use_keys=maker.use_keys, window_ts=window_ts)
    try:
        chunks = native.background(native._chunks(body_blocks(path, native.BLOCK), splitter),
                                   depth=1)
        for chunk, after, scanned in native.parsed_ahead(chunks, scanner.scan):
            run.chunks += 1
            try:
                batch = scanner.batch(scanned.result())
            except Fallback as why:
                run.fallbacks[str(why)] += 1
                records = list(maker.chunk_records(chunk, after))  # whole chunk or nothing
                for record in records:
                    writer.add(record)
                run.written += len(records)
                continue
            writer.add_batch(batch)
            run.written += batch.num_rows
    except native.STOP:
        return run
    run.complete = True
    return run
