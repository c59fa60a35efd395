"""The reference path: export rows -> records, one row at a time.

Every mode ends here for rows the C scanner does not take: a whole window (`EventsStream`), or
one chunk of it that the scanner refused (`native.write_records`, `native_columns.write_parquet`).
It is the definition the fast path is proved equal to, so it exists once.
"""

from __future__ import annotations

import typing as t

import orjson

from tap_fullstory.fields import CUSTOM_VARS, EVENT_ID, EXPORT_END, EXPORT_START, Splitter
from tap_fullstory.keys import EventKeyer


class RecordMaker:
    """Rows of one export window -> records: typed columns, CustomVars, EventId, the window."""

    def __init__(self, *, mobile: bool, use_keys: bool, export_start: str, export_end: str
                 ) -> None:
        self.splitter = Splitter(mobile=mobile)
        self.use_keys = use_keys
        self.export_start, self.export_end = export_start, export_end

    def records(self, rows: t.Iterable[dict[str, t.Any]], keyer: EventKeyer | None = None,
                skip: int = 0) -> t.Iterator[dict[str, t.Any]]:
        """One record per row, in order, after the first `skip` (already emitted: they are still
        keyed, since EventId ordinals count every row of an EventStart)."""
        split = self.splitter.split
        key = (keyer or EventKeyer()).key if self.use_keys else None
        start, end = self.export_start, self.export_end
        position = 0
        for row in rows:
            cols, custom = split(row)
            if key is not None:
                cols[EVENT_ID] = key(cols)
            position += 1
            if position <= skip:
                continue
            cols[CUSTOM_VARS] = custom
            cols[EXPORT_START] = start
            cols[EXPORT_END] = end
            yield cols

    def chunk_records(self, chunk: t.Any, after: t.Any) -> t.Iterator[dict[str, t.Any]]:
        """The records of a chunk of NDJSON lines whose preceding row had EventStart `after`.
        Raises where the window's reference would stop (invalid JSON, a row that is not an object,
        rows out of order): the caller then resumes the window's reference after the rows done."""
        return self.records(_chunk_rows(bytes(chunk)), EventKeyer(after=after))


def _chunk_rows(chunk: bytes) -> t.Iterator[dict[str, t.Any]]:
    loads = orjson.loads
    for line in chunk.split(b"\n"):
        if not line.strip():
            continue
        row = loads(line)
        if not isinstance(row, dict):
            raise ValueError("not a JSON object")
        yield row
