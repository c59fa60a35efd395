"""The day parts' columns: an explicit Arrow schema, and rows -> Arrow, from Python values (the
reference) or from the C scanner's buffers (`NativeChunks`, no copy).

Every record already fits its columns (the misfit rule, `fits`): nothing is coerced here. Types
are never inferred from values (the SDK's default encoder does, and breaks on the CustomVars
object column): integer -> int64, number -> float64, date-time -> timestamp[us, UTC] (milliseconds
kept), CustomVars -> JSON text as the canonical `arrow.json` extension type (Parquet's JSON
logical type). A chunk C cannot prove identical goes through the reference instead
(`records.RecordMaker` -> `ColumnarDayWriter.add`), so the files are the same either way.
"""

from __future__ import annotations

import typing as t

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from tap_fullstory import scanner
from tap_fullstory.fields import CUSTOM_VARS, EVENT_ID
from tap_fullstory.keys import IDENTITY_FIELDS
from tap_fullstory.scanner import Fallback, FloatCheck, Owned
from tap_fullstory.writers.encode import default

if t.TYPE_CHECKING:
    from singer_sdk import Stream

    from tap_fullstory.fits import Fitter

TS_TYPE = pa.timestamp("us", tz="UTC")
_JSON_OPTS = orjson.OPT_NON_STR_KEYS
Kind = t.Literal["integer", "number", "boolean", "string", "date-time", "json"]


# --- schema ---------------------------------------------------------------------------------


def selected_properties(stream: Stream) -> list[str]:
    """Schema properties the catalog selects, in schema order (BATCH mode skips SDK selection)."""
    mask = stream.mask
    return [name for name in stream.schema["properties"] if mask.get(("properties", name), True)]


def property_kind(prop: dict[str, t.Any]) -> Kind:
    """The Arrow-relevant kind of one JSON Schema property."""
    types = prop.get("type", [])
    types = [types] if isinstance(types, str) else [x for x in types if x != "null"]
    if "object" in types or "array" in types or not types:
        return "json"
    if "string" in types:
        return "date-time" if prop.get("format") == "date-time" else "string"
    return t.cast(Kind, types[0]) if types[0] in ("integer", "number", "boolean") else "string"


_ARROW: dict[str, pa.DataType] = {
    "integer": pa.int64(), "number": pa.float64(), "boolean": pa.bool_(), "string": pa.string(),
    "date-time": TS_TYPE, "json": pa.json_(),
}


def arrow_schema(stream: Stream) -> tuple[pa.Schema, list[Kind]]:
    """Explicit Arrow schema of the selected properties (never inferred from values)."""
    props = stream.schema["properties"]
    names = selected_properties(stream)
    kinds = [property_kind(props[name]) for name in names]
    return pa.schema([pa.field(n, _ARROW[k]) for n, k in zip(names, kinds, strict=True)]), kinds


# --- column conversion ----------------------------------------------------------------------


class Converter:
    """Python values of one column -> an Arrow array of the column's type, one `pa.array` call
    per column (timestamps: a string array cast in C++).

    Every value already fits its column (the misfit rule, `fits`, made the records): nothing is
    coerced here. `pa.array` would truncate 1.5 to 1 in an int64 column, so a value that did not
    fit would be a bug upstream; where pyarrow notices one, it is an error naming the column.
    """

    def convert(self, name: str, kind: Kind, values: list[t.Any]) -> pa.Array:
        try:
            if kind == "json":
                dumps = orjson.dumps
                return pa.ExtensionArray.from_storage(pa.json_(), pa.array(
                    [None if v is None else dumps(v, default=default, option=_JSON_OPTS)
                     for v in values], pa.string()))
            if kind == "date-time":
                return pc.cast(pa.array(values, pa.string()), TS_TYPE)
            return pa.array(values, _ARROW[kind])
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError) as exc:
            raise ValueError(f"column {name}: a value does not fit type {kind} ({exc}); every "
                             "record should fit (fits.py): this is a bug") from None


# --- C's buffers -> Arrow (the fast path) ------------------------------------------------

#: C parses timestamps in FullStory's form to microseconds (any other form: refused).
_C_ARROW = {"i": pa.int64(), "f": pa.float64(), "s": pa.string(), "t": TS_TYPE}


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
        self._kinds = {name: scanner.KIND_CODES[fitter.kind(name)] for name in known}
        self._spec = tuple((name.encode(), self._kinds[name], True) for name in known)
        self._identity = (tuple(known.index(name) for name in IDENTITY_FIELDS)
                          if use_keys else None)
        self._window_ts = window_ts
        self._floats = FloatCheck()

    def scan(self, chunk: bytes, after: t.Any) -> Scanned | str:
        """The C pass (releases the GIL: runs on a worker thread); a str is its refusal."""
        result = scanner.split(chunk, self._spec, self._identity, after)
        return result if isinstance(result, str) else Scanned(*result)

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
            arrays[name] = pa.Array.from_buffers(_C_ARROW[kind], n, [_buffer(b) for b in buffers])
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
