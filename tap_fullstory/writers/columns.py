"""The day parts' columns: an explicit Arrow schema, and rows -> Arrow, from Python values (the
reference) or from the C scanner's buffers (`NativeChunks`, no copy).

Types are never inferred from values (the SDK's default encoder does, and breaks on the CustomVars
object column): integer -> int64, number -> float64, date-time -> timestamp[us, UTC] (milliseconds
kept), CustomVars -> JSON text as the canonical `arrow.json` extension type (Parquet's JSON
logical type). A chunk C cannot prove identical goes through the reference instead
(`records.RecordMaker` -> `ColumnarDayWriter.add`), so the files are the same either way.
"""

from __future__ import annotations

import contextlib
import datetime as dt
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
    """Python values of one column -> an Arrow array of the column's type.

    The fast path is one `pa.array` call per column (timestamps: a string array cast in C++).
    Values that do not fit (a string in an integer column, an unparseable timestamp) take a
    per-value path; values that cannot be represented become null and are counted.
    """

    def __init__(self, logger: t.Any) -> None:
        self.logger = logger
        self.nulled: dict[str, int] = {}

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
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError):
            return self._slow(name, kind, values)

    def _slow(self, name: str, kind: Kind, values: list[t.Any]) -> pa.Array:
        fix = _FIXERS[kind]
        out: list[t.Any] = []
        lost = 0
        for v in values:
            fixed = fix(v) if v is not None else None
            lost += fixed is None and v is not None
            out.append(fixed)
        if lost:
            self.nulled[name] = self.nulled.get(name, 0) + lost
            self.logger.warning("BATCH: %d value(s) of %s do not fit type %s; written as null",
                                lost, name, kind)
        if kind == "date-time":
            return pa.array(out, TS_TYPE)
        return pa.array(out, _ARROW[kind])


def _to_int(v: t.Any) -> int | None:
    with contextlib.suppress(ValueError, TypeError, OverflowError):
        n = int(v) if not isinstance(v, float) or v.is_integer() else None
        if n is not None and -(2**63) <= n < 2**63:
            return n
    return None


def _to_float(v: t.Any) -> float | None:
    with contextlib.suppress(ValueError, TypeError):
        return float(v)
    return None


def _to_bool(v: t.Any) -> bool | None:
    return v if isinstance(v, bool) else None


def _to_str(v: t.Any) -> str:
    return v if isinstance(v, str) else orjson.dumps(v, default=default, option=_JSON_OPTS).decode()


def _to_ts(v: t.Any) -> dt.datetime | None:
    if not isinstance(v, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(v.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


_FIXERS: dict[str, t.Callable[[t.Any], t.Any]] = {
    "integer": _to_int, "number": _to_float, "boolean": _to_bool, "string": _to_str,
    "date-time": _to_ts, "json": lambda v: v,
}


# --- C's buffers -> Arrow (the fast path) ------------------------------------------------

_KIND = {"integer": "i", "number": "f", "string": "s", "date-time": "t"}
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
        result = scanner.split(chunk, self._spec, self._identity, after)
        return result if isinstance(result, str) else Scanned(*result)

    def batch(self, scanned: Scanned | str) -> pa.RecordBatch:
        if isinstance(scanned, str):
            raise Fallback(scanned)
        n = scanned.rows
        self._floats.check(scanned.floats)
        arrays: dict[str, pa.Array] = {}
        for name, buffers in zip(self._out, scanned.columns, strict=True):
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
