"""The two paths the differential tests compare, built in one place: the C scanner through the
project's wrappers (`columns.NativeChunks`, `record_lines.NativeRecords`) and the per-record
reference (`record_lines.ChunkEncoder.encode`: `RecordMaker` and orjson; for Parquet its records
into `ColumnarDayWriter.add`; for JSONL into `JsonlDayWriter`). When those APIs move, this file is
the one to adapt.

A mode is one way the tap calls the scanner: Parquet columns, RECORD lines or JSONL day-part
lines (RECORD mode's scan in a JSONL frame, against `JsonlDayWriter.add`), web or mobile fields,
with or without EventId, with deselected properties (fields C then only validates).
"""

from __future__ import annotations

import dataclasses
import io
import struct
import typing as t

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from tap_fullstory import scanner
from tap_fullstory.fields import CUSTOM_VARS, EXPORT_END, EXPORT_START, Splitter, singer_schema
from tap_fullstory.records import RecordMaker
from tap_fullstory.writers.columnar import ColumnarDayWriter
from tap_fullstory.writers.columns import _ARROW, TS_TYPE, NativeChunks, property_kind
from tap_fullstory.writers.day_parts import JsonlDayWriter
from tap_fullstory.writers.record_lines import (
    JSONL_FRAME,
    ChunkEncoder,
    NativeRecords,
    record_line_parts,
)

WINDOW = ("2024-01-01T00:00:00Z", "2024-01-01T06:00:00Z")
#: Deselected in the modes that deselect: an integer, a float, a string, a timestamp, and
#: (RECORD) CustomVars and the window's end.
DESELECTED = ("PageDuration", "EventCumulativeLayoutShift", "PageUrl", "PageStart")


@dataclasses.dataclass(frozen=True)
class Mode:
    name: str
    record: bool  # RECORD lines (else Parquet columns)
    mobile: bool
    use_keys: bool  # EventId
    drop: tuple[str, ...]  # deselected properties
    after: str | None  # EventStart of the row before the chunk
    jsonl: bool = False  # lines in a JSONL part's frame (with record=True)


MODES = (
    Mode("parquet-web", record=False, mobile=False, use_keys=True, drop=(), after=None),
    Mode("parquet-mobile-deselected", record=False, mobile=True, use_keys=False,
         drop=DESELECTED, after=None),
    Mode("record-web", record=True, mobile=False, use_keys=True, drop=(), after=None),
    Mode("record-mobile-deselected", record=True, mobile=True, use_keys=True,
         drop=(*DESELECTED, CUSTOM_VARS, EXPORT_END), after="2020-01-01T00:00:00.000Z"),
    Mode("jsonl-web-deselected", record=True, mobile=False, use_keys=True, drop=DESELECTED,
         after=None, jsonl=True),
)

#: What a path gave for a chunk: ("refused", reason) or ("rows", exact value).
Outcome = tuple[str, t.Any]


def bits(table: pa.Table | pa.RecordBatch) -> tuple[t.Any, ...]:
    """A table's exact content: floats as their 8 bytes (-0.0 differs from 0.0), timestamps as
    microseconds, JSON as its text, nulls as None."""
    out: list[t.Any] = [str(table.schema)]
    for field, column in zip(table.schema, table.columns, strict=True):
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        if isinstance(column, pa.ExtensionArray):
            column = column.storage
        if pa.types.is_timestamp(field.type):
            column = pc.cast(column, pa.int64())
        values = column.to_pylist()
        if pa.types.is_floating(field.type):
            values = [None if v is None else struct.pack("<d", v) for v in values]
        out.append((field.name, values))
    return tuple(out)


def record_encoder(*, mobile: bool, use_keys: bool, drop: tuple[str, ...], jsonl: bool = False
                   ) -> ChunkEncoder:
    """The reference for RECORD (or JSONL) lines, and the template of the scanner's lines."""
    maker = RecordMaker(mobile=mobile, use_keys=use_keys, export_start=WINDOW[0],
                        export_end=WINDOW[1])
    frame = JSONL_FRAME if jsonl else record_line_parts("events", "2024-01-02T00:00:00+00:00")
    return ChunkEncoder(frame, maker, drop)


def _no_file(*_args: t.Any) -> t.Any:
    raise AssertionError("the reference's batches are compared, not written")


class Paths:
    """One mode's scanner and reference, reused across chunks."""

    def __init__(self, mode: Mode) -> None:
        self.mode = mode
        splitter = Splitter(mobile=mode.mobile)
        self.known = splitter.column_names
        # Parquet: the records of the reference (nothing dropped), into the day writer
        self.encoder = record_encoder(mobile=mode.mobile, use_keys=mode.use_keys,
                                      drop=mode.drop if mode.record else (), jsonl=mode.jsonl)
        if mode.record:
            self.records = NativeRecords(self.encoder, self.known)
            return
        props = singer_schema(mobile=mode.mobile, event_id=mode.use_keys)["properties"]
        kinds = {name: property_kind(prop) for name, prop in props.items()
                 if name not in mode.drop}
        self.schema = pa.schema([pa.field(name, _ARROW[kind]) for name, kind in kinds.items()])
        self.kinds = list(kinds.values())
        window_ts = {name: pc.cast(pa.scalar(value), TS_TYPE)
                     for name, value in zip((EXPORT_START, EXPORT_END), WINDOW, strict=True)}
        self.columns = NativeChunks(
            self.schema, self.known, self.encoder.maker.fitter, use_keys=mode.use_keys,
            window_ts=window_ts)

    def scanner(self, chunk: t.Any) -> Outcome:
        """The C path on `chunk` (bytes or a memoryview of bytes), with its Python checks."""
        after = self.mode.after
        try:
            if self.mode.record:
                view, rows = self.records.lines(self.records.scan(chunk, after))
                return "rows", (rows, bytes(view))
            return "rows", bits(self.columns.batch(self.columns.scan(chunk, after)))
        except scanner.Fallback as why:
            return "refused", str(why)

    def reference(self, chunk: bytes) -> Outcome:
        """The per-record path; raises where it stops (invalid JSON, rows out of order...)."""
        if self.mode.jsonl:  # the JSONL writer's own per-record path
            lines = self.jsonl_lines(chunk)
            return "rows", (lines.count(b"\n"), lines)
        if self.mode.record:
            lines, rows = self.encoder.encode(chunk, self.mode.after)
            return "rows", (rows, lines)
        return "rows", bits(self.reference_table(chunk))

    def reference_records(self, chunk: bytes) -> list[dict[str, t.Any]]:
        """The reference's records (deselected properties dropped in RECORD modes)."""
        lines, _ = self.encoder.encode(chunk, self.mode.after)
        if self.mode.jsonl:
            return [orjson.loads(line) for line in lines.splitlines()]
        return [orjson.loads(line)["record"] for line in lines.splitlines()]

    def reference_table(self, chunk: bytes) -> pa.Table:
        """Parquet modes: the reference's records through the day writer, as one table."""
        batches: list[pa.RecordBatch] = []
        writer = ColumnarDayWriter(
            _no_file, _no_file, self.schema, self.kinds, part_rows=1 << 40,
            row_group_rows=chunk.count(b"\n") + 1,  # small column lists: fast
            all_names=self.known)
        writer._put = batches.append  # type: ignore[method-assign]  # the batches, not a file
        for record in self.reference_records(chunk):  # orjson reads back exactly what it wrote
            writer.add(record)
        writer.close()  # the last batch (no part was opened: nothing to commit)
        return pa.Table.from_batches(batches, schema=self.schema)

    def jsonl_lines(self, chunk: bytes) -> bytes:
        """The reference's records through the JSONL day writer (one part, uncompressed)."""
        out = io.BytesIO()

        class Part:
            url = "memory://part"
            file = out

            def commit(self) -> str:
                return self.url

        writer = JsonlDayWriter(lambda _index: Part(), list(self.mode.drop), False, 1 << 40)
        for record in self.encoder.maker.chunk_records(chunk, self.mode.after):
            writer.add(record)
        writer.close()
        return out.getvalue()
