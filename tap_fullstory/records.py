"""The reference path: export rows -> records, one row at a time.

A record's columns always fit the catalogue's types: `fits.Fitter` applies the misfit rule after
EventId (which hashes the values as FullStory exported them) and before NUL is stripped.

Every mode ends here for rows the C scanner does not take: a whole window (`EventsStream`), or
one chunk of it that the scanner refused (`record_lines.write_records`, `columnar.write_columns`).
It is the definition the fast path is proved equal to, so it exists once.

Text a loader rejects is settled here too: `loads` decodes lone surrogate escapes as U+FFFD, and
NUL characters are stripped (`nul_characters: strip`) as a record's last step, after EventId:
EventId hashes the values as FullStory exported them, so it is the same with either setting.
"""

from __future__ import annotations

import typing as t

import orjson

from tap_fullstory import text
from tap_fullstory.fields import (
    CUSTOM_VARS,
    EVENT_ID,
    EXPORT_END,
    EXPORT_START,
    Splitter,
    export_fields,
)
from tap_fullstory.fits import Fitter
from tap_fullstory.keys import EventKeyer

_orjson_loads = orjson.loads
_nul_escape = text.NUL_ESCAPE.search


class _MayHoldNul(dict):
    """A row decoded from a line with a `\\u0000` escape: only these rows are scanned for NUL."""


class RecordMaker:
    """Rows of one export window -> records: typed columns, CustomVars, EventId, the window."""

    def __init__(self, *, mobile: bool, use_keys: bool, export_start: str, export_end: str,
                 fields: t.Sequence[tuple[str, str]] | None = None, strip_nul: bool = True,
                 on_nul: t.Callable[[int], None] | None = None) -> None:
        """`fields`: the known columns (default: the event catalogue for this `mobile`);
        `strip_nul`: the setting nul_characters=strip; `on_nul(n)` is told the running count of
        rows that held NUL each time one is met (before that row is written)."""
        fields = export_fields(mobile=mobile) if fields is None else fields
        self.splitter = Splitter(mobile=mobile, fields=fields)
        #: The misfit rule (`fits`), and its counts per field for the window.
        self.fitter = Fitter(fields)
        self.use_keys = use_keys
        self.export_start, self.export_end = export_start, export_end
        self.strip_nul = strip_nul
        self.on_nul = on_nul
        #: Rows that held NUL (stripped or kept, per `strip_nul`).
        self.nul_rows = 0

    @staticmethod
    def loads(line: bytes) -> t.Any:
        """One row's JSON text -> the row (`text.loads`); the decoders of the reference use it.
        Inlined for the rows without a lone surrogate or a backslash: nearly all of them."""
        try:
            row = _orjson_loads(line)
        except orjson.JSONDecodeError:
            row = text.loads(line)
        # a NUL needs the escape \u0000: no backslash (92), no NUL; else the exact search
        if line.find(92) >= 0 and _nul_escape(line) is not None and type(row) is dict:
            return _MayHoldNul(row)
        return row

    def records(self, rows: t.Iterable[dict[str, t.Any]], keyer: EventKeyer | None = None,
                skip: int = 0) -> t.Iterator[dict[str, t.Any]]:
        """One record per row, in order, after the first `skip` (already emitted: they are still
        keyed, since EventId ordinals count every row of an EventStart). Rows decoded with
        `loads`: NUL is looked for only in the rows it marked."""
        split = self.splitter.split
        fit = self.fitter.fit
        key = (keyer or EventKeyer()).key if self.use_keys else None
        start, end = self.export_start, self.export_end
        position = 0
        for row in rows:
            marked = type(row) is _MayHoldNul
            cols, custom = split(row)
            if key is not None:
                cols[EVENT_ID] = key(cols)
            position += 1
            if position <= skip:
                continue
            custom = fit(cols, custom)  # after EventId: it hashes the values as exported
            if marked:
                cols, custom = self._nul(cols, custom)
            cols[CUSTOM_VARS] = custom
            cols[EXPORT_START] = start
            cols[EXPORT_END] = end
            yield cols

    def _nul(self, cols: dict[str, t.Any], custom: dict[str, t.Any]
             ) -> tuple[dict[str, t.Any], dict[str, t.Any]]:
        """A row whose text had a `\\u0000` escape: count it if it holds NUL, and strip it."""
        if not (text.has_nul(cols) or text.has_nul(custom)):
            return dict(cols), custom
        self.nul_rows += 1
        if self.on_nul is not None:
            self.on_nul(self.nul_rows)
        if not self.strip_nul:
            return dict(cols), custom
        # keys too (CustomVars), kept in sorted order as Splitter gives them
        return text.strip_nul(cols), dict(sorted(text.strip_nul(custom).items()))

    def chunk_records(self, chunk: t.Any, after: t.Any) -> t.Iterator[dict[str, t.Any]]:
        """The records of a chunk of NDJSON lines whose preceding row had EventStart `after`.
        Raises where the window's reference would stop (invalid JSON, a row that is not an object,
        rows out of order): the caller then resumes the window's reference after the rows done."""
        return self.records(self._chunk_rows(bytes(chunk)), EventKeyer(after=after))

    def _chunk_rows(self, chunk: bytes) -> t.Iterator[dict[str, t.Any]]:
        loads = self.loads
        for line in chunk.split(b"\n"):
            if not line.strip():
                continue
            row = loads(line)
            if not isinstance(row, dict):
                raise ValueError("not a JSON object")
            yield row
