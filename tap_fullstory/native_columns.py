"""A chunk of NDJSON export rows -> one Arrow record batch, through the C scanner (issue #8, P1).

`native` runs `tap_fullstory._columns` (C): the known columns come back as Arrow buffers, plus
the exact text of CustomVars and the EventIds. This module wraps those buffers (no copy) into the
day writer's record batch; anything not provably identical raises `native.Fallback`.
"""

from __future__ import annotations

import typing as t

import pyarrow as pa

from tap_fullstory.fields import CUSTOM_VARS, EVENT_ID
from tap_fullstory.keys import IDENTITY_FIELDS
from tap_fullstory.native import Fallback, FloatCheck, Owned, _columns, start_text

_KIND = {"integer": "i", "number": "f", "string": "s", "date-time": "t"}
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


class NativeChunks:
    """Per window: the scanner's spec, and the batch for each scanned chunk."""

    def __init__(self, schema: pa.Schema, kinds: dict[str, str], known: list[str], *,
                 use_keys: bool, window_ts: dict[str, pa.Scalar]) -> None:
        """`kinds`: the writer's kind per schema column; `known`: every known export field
        (Splitter's columns, selected or not)."""
        self.schema = schema
        # EventStart is always scanned: the EventId ordinals follow it, selected or not.
        wanted = {name for name in schema.names if name in kinds} | {"EventStart"}
        self._out = [name for name in known if name in wanted]
        self._kinds = {name: _KIND[kinds.get(name, "date-time")] for name in self._out}
        self._spec = tuple((name.encode(), self._kinds.get(name, "s"), name in wanted)
                           for name in known)
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
        if isinstance(scanned, str):
            raise Fallback(scanned)
        n = scanned.rows
        self._floats.check(scanned.floats)
        arrays: dict[str, pa.Array] = {}
        for name, buffers in zip(self._out, scanned.columns, strict=True):
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
