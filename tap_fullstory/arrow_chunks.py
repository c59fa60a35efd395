"""Parquet day batches from an NDJSON export without building Python columns (issue #8, P1/P3).

The per-record path scatters each record dict into Python lists and converts them with `pa.array`
(per-value type checks, mallocs): most of a day's run. Here the export is cut into chunks of
NDJSON lines (the RECORD writer's cutting, `output._chunks`: at EventStart changes, so EventId
ordinals never span two chunks), each parsed on a worker thread one chunk ahead. Per chunk, the
first of these that can prove its result identical to the per-record path writes it:

0. the C scanner (`native`, when built): every column, CustomVars and EventId in one pass; the
   export is decompressed and cut on a thread of its own meanwhile.

Without it (or where it refuses), `pyarrow.json.read_json` parses the chunk (explicit types for
the known columns; it drops the GIL), then:

1. columnar: CustomVars and the text EventKeyer hashes are assembled from Arrow columns with
   orjson's exact serialisation (sorted keys, its escapes); only blake2b and the ordinal count
   run per row in Python. Not for: a JSON null, a surrogate escape, a float column that also
   holds integer literals, nested or other value types, control characters (`Fallback`).
2. Python pass: known columns from Arrow, one `orjson.loads` per line for CustomVars (routed as
   `Splitter.split` routes them) and EventId (`EventKeyer`).
3. per-record: `Splitter`, `EventKeyer`, `ParquetDayWriter.add`, exactly as the per-record path
   (same values, same warnings): an Arrow parse or type error, a known field spelled in another
   case, a timestamp not in FullStory's canonical form.

Anything the per-record path itself stops at (invalid JSON, rows out of EventStart order, a
truncated file) stops this writer: the caller resumes the window's records after the rows
already written and handles the problem as it always does.
"""

from __future__ import annotations

import io
import os
import re
import typing as t
from concurrent.futures import Future

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from tap_fullstory import native
from tap_fullstory.fields import CUSTOM_VARS, EVENT_ID, EXPORT_END, EXPORT_START, Splitter
from tap_fullstory.keys import IDENTITY_FIELDS, EventKeyer, keys_of
from tap_fullstory.native import Fallback
from tap_fullstory.native_columns import NativeChunks
from tap_fullstory.output import _chunks, line_event_start
from tap_fullstory.parquet import _ARROW, TS_TYPE

if t.TYPE_CHECKING:
    from tap_fullstory.parquet import Kind, ParquetDayWriter

#: Set to "0" to disable the fast path (the per-record path then writes every row).
ENABLED = os.environ.get("TAP_FULLSTORY_ARROW_CHUNKS", "1") != "0"
#: The C scanner takes chunks first (TAP_FULLSTORY_NATIVE=0: the Arrow paths take every chunk).
NATIVE = native.ENABLED
_JSON_OPTS = orjson.OPT_NON_STR_KEYS
#: FullStory's timestamp form, the only one `Splitter` passes through untouched (see fields.py).
_CANONICAL_TS = r"^.{19}\..{3}Z$"


_SPACE = frozenset(b" \t\r\n")
_BEFORE_VALUE = frozenset(b":[,")


def _has_null(chunk: bytes) -> bool:
    """A JSON null value in the chunk: absent and null custom vars look alike in Arrow, so such a
    chunk takes the Python pass. (A null value follows `:`, `[` or `,`, maybe after blanks; any
    other `null` is inside a string: a false alarm only costs the Python pass.)"""
    pos = chunk.find(b"null")
    while pos >= 0:
        before = pos - 1
        while before >= 0 and chunk[before] in _SPACE:
            before -= 1
        if before >= 0 and chunk[before] in _BEFORE_VALUE:
            return True
        pos = chunk.find(b"null", pos + 4)
    return False


#: Control characters orjson writes as \u00XX (the rest of its escapes are `_ESCAPES`).
_CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f]"
#: orjson's two-character escapes, backslash first.
_ESCAPES = (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"))
_ESCAPE_CODES = (b"\\", b'"', b"n", b"r", b"t")  # the letter after the backslash in JSON
_CONTROL_CODES = frozenset((b"b", b"f", b"u"))  # the escapes that can give other controls
_ESCAPE = re.compile(rb"\\(.)", re.DOTALL)


class _Cutter:
    """The `event_start` hook `output._chunks` cuts by (EventStart as the keyer would see it)."""

    def __init__(self, splitter: Splitter) -> None:
        self.splitter = splitter

    def event_start(self, line: bytes) -> t.Any:
        return line_event_start(self.splitter, line)


class ArrowChunkWriter:
    """Writes one window's NDJSON export into a `ParquetDayWriter`, chunk by chunk."""

    def __init__(self, writer: ParquetDayWriter, *, mobile: bool, use_keys: bool,
                 export_start: str, export_end: str) -> None:
        self.writer = writer
        self.schema = writer.schema
        self.use_keys = use_keys
        self.export_start, self.export_end = export_start, export_end
        self.mobile = mobile
        splitter = Splitter(mobile=mobile)
        self._exact = frozenset(splitter.column_names)
        self._lower = {name.lower(): name for name in splitter.column_names}
        kinds = dict(zip(writer.names, writer.kinds, strict=True))
        self._known: list[tuple[str, Kind]] = [
            (name, kinds[name]) for name in writer.names if name in self._exact]
        # Timestamps are parsed as text, checked canonical, then cast as `Converter` casts them.
        self._parse = pj.ParseOptions(
            explicit_schema=pa.schema([
                pa.field(name, pa.string() if kind == "date-time" else _ARROW[kind])
                for name, kind in self._known]),
            unexpected_field_behavior="ignore")
        # One block, one thread: the other core is busy with the rest of the chunk's work.
        self._read = pj.ReadOptions(use_threads=False, block_size=16 << 20)
        self._window_ts = {name: pc.cast(pa.scalar(value), TS_TYPE)
                           for name, value in ((EXPORT_START, export_start),
                                               (EXPORT_END, export_end))}
        #: Keys seen to be custom vars (not a known field in any case): checked once each.
        self._custom: set[str] = set()
        self._int_patterns: dict[str, re.Pattern[bytes]] = {}
        #: Per chunk (columnar): the string escapes to apply, and whether controls may occur.
        self._escapes: list[tuple[str, str]] = list(_ESCAPES)
        self._control = True
        self.fallbacks = 0  # chunks written by the per-record path
        self.partial = 0  # chunks that needed the Python pass (CustomVars, EventId)
        self.native_chunks = 0  # chunks written by the C scanner
        #: Every column from Arrow, no Python pass per line: needs the identity fields parsed.
        self.vectorized = set(IDENTITY_FIELDS) <= {name for name, _ in self._known}
        self._infer = pj.ParseOptions(explicit_schema=self._parse.explicit_schema,
                                      unexpected_field_behavior="infer")
        #: The C scanner, when built (`native`): tried first on every chunk.
        self._native = (NativeChunks(
            self.schema, kinds, splitter.column_names, use_keys=use_keys,
            window_ts=self._window_ts)
            if native.AVAILABLE and NATIVE else None)

    def write(self, path: str) -> tuple[int, bool]:
        """(rows written, complete). Not complete: resume the per-record path after the rows."""
        from tap_fullstory.sources.decode import CHUNK, body_blocks, is_json_array

        if is_json_array(path):
            return 0, False
        written = 0
        cutter = _Cutter(Splitter(mobile=self.mobile))
        pool = native.parse_pool()
        try:
            # With the C scanner: big blocks, chunks as views of them (C reads any buffer; the
            # other paths get bytes when they need them).
            views = self._native is not None
            chunks = _chunks(body_blocks(path, native.BLOCK if views else CHUNK),
                             cutter, views=views)  # type: ignore[arg-type]  # event_start
            for chunk, after, parsed in self._parsed(chunks):
                if self._native is not None or self.vectorized:
                    try:
                        batch = (self._native.batch(parsed.result()) if self._native
                                 else self._columnar(chunk, after, parsed.result()))
                    except Fallback:
                        self.partial += 1
                    except Exception:  # out of order...: the per-record path decides
                        return written, False
                    else:
                        self.writer.add_batch(batch)
                        written += batch.num_rows
                        self.native_chunks += self._native is not None
                        continue
                chunk = bytes(chunk)  # a view (C path) -> bytes for the paths below
                parsed = pool.submit(self._arrow, chunk)
                try:
                    extra = self._python_pass(chunk, after)
                    batch = self._assemble(parsed.result(), extra)
                except Fallback:
                    parsed.cancel()
                    self.fallbacks += 1
                    added, ok = self._per_record(chunk, after)
                    written += added
                    if not ok:
                        return written, False
                    continue
                except Exception:  # invalid JSON, out of order...: the per-record path decides
                    return written, False
                self.writer.add_batch(batch)
                written += batch.num_rows
        except Exception:  # a truncated or corrupt body, no cut found (output._Stop)...
            return written, False
        return written, True

    def _parsed(self, chunks: t.Iterator[tuple[bytes, t.Any]]
                ) -> t.Iterator[tuple[bytes, t.Any, Future[t.Any]]]:
        """Chunks with their parse (C scan, or Arrow) started ahead on the worker thread; with
        the C scanner, decompressing and cutting run on a thread of their own as well."""
        if self._native is None and not self.vectorized:
            for chunk, after in chunks:
                yield chunk, after, t.cast("Future[t.Any]", None)
            return
        parse: t.Callable[[bytes, t.Any], t.Any]
        if self._native is not None:
            parse, chunks = self._native.scan, native.background(chunks, depth=1)
        else:
            parse = lambda chunk, _after: self._arrow(chunk, self._infer)  # noqa: E731
        yield from native.parsed_ahead(chunks, parse)

    def _arrow(self, chunk: bytes, options: pj.ParseOptions | None = None
               ) -> pa.Table | Exception:
        try:
            return pj.read_json(io.BytesIO(chunk), read_options=self._read,
                                parse_options=options or self._parse)
        except (pa.ArrowException, ValueError) as exc:
            return exc

    def _python_pass(self, chunk: bytes, after: t.Any) -> tuple[list[bytes], list[str] | None]:
        """CustomVars (JSON text) and EventIds of a chunk's rows; Fallback on a case-variant
        known field; raises (JSONDecodeError, ValueError, OutOfOrderError) where the per-record
        path would stop."""
        loads, dumps = orjson.loads, orjson.dumps
        exact, lower, custom = self._exact, self._lower, self._custom
        key = EventKeyer(after=after).key if self.use_keys else None
        customs: list[bytes] = []
        ids: list[str] = []
        for line in chunk.split(b"\n"):
            if not line.strip():
                continue
            row = loads(line)
            if type(row) is not dict:
                raise ValueError("not a JSON object")
            extra = row.keys() - exact
            if extra:
                if not extra <= custom:  # a new key: is it a known field in another case?
                    for name in extra:
                        if name.lower() in lower:  # Splitter would move it to that column
                            raise Fallback(name)
                        custom.add(name)
                customs.append(dumps({name: row[name] for name in sorted(extra)},
                                     option=_JSON_OPTS))
            else:
                customs.append(b"{}")
            if key is not None:
                ids.append(key(row))
        return customs, (ids if key is not None else None)

    def _assemble(self, parsed: pa.Table | Exception,
                  extra: tuple[list[bytes] | pa.ChunkedArray, list[str] | None]
                  ) -> pa.RecordBatch:
        if isinstance(parsed, Exception):
            raise Fallback(str(parsed))
        customs, ids = extra
        n = len(customs)
        if parsed.num_rows != n:
            raise Fallback("row count")
        custom_text = (pa.array(customs, pa.string()) if isinstance(customs, list)
                       else customs.combine_chunks())
        arrays: list[pa.Array] = []
        for name in self.schema.names:
            if name == EVENT_ID:
                arrays.append(pa.array(ids, pa.string()))
            elif name == CUSTOM_VARS:
                arrays.append(pa.ExtensionArray.from_storage(pa.json_(), custom_text))
            elif name in self._window_ts:
                arrays.append(pa.repeat(self._window_ts[name], n))
            else:
                column = parsed.column(name).combine_chunks()
                if column.type == pa.string() and self.schema.field(name).type == TS_TYPE:
                    column = self._timestamps(column)
                arrays.append(column)
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    @staticmethod
    def _timestamps(column: pa.Array) -> pa.Array:
        if column.null_count < len(column):
            canonical = pc.match_substring_regex(column, _CANONICAL_TS)
            if not pc.all(canonical).as_py():  # Splitter would rewrite such a value
                raise Fallback("timestamp form")
        try:
            return pc.cast(column, TS_TYPE)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise Fallback(str(exc)) from None

    def _per_record(self, chunk: bytes, after: t.Any) -> tuple[int, bool]:
        """The chunk through the per-record path: (rows added, no error)."""
        loads = orjson.loads
        split = Splitter(mobile=self.mobile).split
        key = EventKeyer(after=after).key if self.use_keys else None
        add = self.writer.add
        added = 0
        try:
            for line in chunk.split(b"\n"):
                if not line.strip():
                    continue
                row = loads(line)
                if not isinstance(row, dict):
                    return added, False
                cols, custom = split(row)
                if key is not None:
                    cols[EVENT_ID] = key(cols)
                cols[CUSTOM_VARS] = custom
                cols[EXPORT_START] = self.export_start
                cols[EXPORT_END] = self.export_end
                add(cols)
                added += 1
        except Exception:
            return added, False
        return added, True

    # --- columnar: no Python pass per line ----------------------------------------------------

    def _columnar(self, chunk: bytes, after: t.Any, parsed: pa.Table | Exception
                  ) -> pa.RecordBatch:
        """The chunk's batch built in Arrow alone: CustomVars and the EventId input (the JSON
        text `EventKeyer` hashes) are assembled from columns with orjson's exact serialisation.
        Fallback (to the Python pass) on anything that could serialise differently."""
        # Which escapes the chunk has (one scan): a string can only hold what was escaped.
        found = set(_ESCAPE.findall(chunk))
        if ((b"u" in found and (b"\\ud" in chunk or b"\\uD" in chunk)) or _has_null(chunk)
                or b"\n\n" in chunk or chunk[:1] == b"\n"):
            raise Fallback("null, surrogate escape or blank line")
        self._escapes = [pair for pair, code in zip(_ESCAPES, _ESCAPE_CODES, strict=True)
                         if code in found]
        self._control = not found.isdisjoint(_CONTROL_CODES)
        if isinstance(parsed, Exception):
            raise Fallback(str(parsed))
        table = parsed
        n = table.num_rows
        if n != chunk.count(b"\n") + (not chunk.endswith(b"\n")):
            raise Fallback("row count")
        known = {name for name, _ in self._known}
        customs = sorted(name for name in table.column_names if name not in known)
        parts = []
        for name in customs:
            if name.lower() in self._lower:  # a known field in another case
                raise Fallback(name)
            column = table.column(name)
            if column.type == pa.null():
                continue  # absent in every row (no JSON null in the chunk)
            if column.type == pa.float64() and self._has_int_literal(chunk, name):
                raise Fallback(f"{name}: integers among floats")
            value = self._json_text(column)
            parts.append(pc.binary_join_element_wise(
                orjson.dumps(name).decode() + ":", value, ""))
        if parts:
            inner = pc.binary_join_element_wise(*parts, ",", null_handling="skip")
            custom_text = pc.binary_join_element_wise("{", inner, "}", "")
        else:
            custom_text = pa.repeat(pa.scalar("{}"), n)
        ids = self._event_ids(table, after) if self.use_keys else None
        return self._assemble(table, (custom_text, ids))

    def _int_literal(self, name: str) -> re.Pattern[bytes]:
        """Matches `: 123` (an integer literal) after a key."""
        found = self._int_patterns.get(name)
        if found is None:
            found = self._int_patterns[name] = re.compile(rb"\s*:\s*-?\d+\s*[,}\]]")
        return found

    def _has_int_literal(self, chunk: bytes, name: str) -> bool:
        """True when `"name": 123` (an integer literal) is in the chunk's text (found with
        bytes.find, far faster than a regex scan of the whole chunk)."""
        needle = orjson.dumps(name)
        after_name = self._int_literal(name).match
        pos = chunk.find(needle)
        while pos >= 0:
            pos += len(needle)
            if after_name(chunk, pos):
                return True
            pos = chunk.find(needle, pos)
        return False

    def _json_text(self, column: pa.ChunkedArray) -> pa.ChunkedArray:
        """orjson's text of each value (null stays null); Fallback for a type it may write
        differently (floats, nested values, inferred timestamps)."""
        kind = column.type
        if kind == pa.string():
            if self._control and pc.any(pc.match_substring_regex(column, _CONTROL)).as_py():
                raise Fallback("control character")
            escaped = column
            for char, escape in self._escapes:
                escaped = pc.replace_substring(escaped, char, escape)
            return pc.binary_join_element_wise('"', escaped, '"', "")
        if kind == pa.int64() or kind == pa.bool_():
            return pc.cast(column, pa.string())
        if kind == pa.float64():
            # orjson writes the shortest round-trip text (the caller has checked that no value
            # was an integer in the JSON: Arrow promotes a mixed column to float64).
            dumps = orjson.dumps
            return pa.chunked_array([pa.array(
                [None if value is None else dumps(value) for value in column.to_pylist()],
                pa.string())])
        if pa.types.is_list(kind) and kind.value_type in (pa.int64(), pa.string(), pa.null()):
            return pa.chunked_array([self._list_text(chunk) for chunk in column.chunks])
        raise Fallback(f"custom value type {kind}")

    def _list_text(self, array: pa.ListArray) -> pa.Array:
        """orjson's `[a,b]` for a list array without null items."""
        items = array.values
        if items.null_count or (items.type == pa.null() and len(items)):
            raise Fallback("null in a list")
        texts = (pa.array([], pa.string()) if items.type == pa.null() else
                 self._json_text(pa.chunked_array([items], items.type)).combine_chunks())
        lists = pa.ListArray.from_arrays(array.offsets, texts, mask=array.is_null())
        return pc.binary_join_element_wise("[", pc.binary_join(lists, ","), "]", "")

    def _event_ids(self, table: pa.Table, after: t.Any) -> list[str]:
        """EventKeyer's keys: blake2b of orjson's `[identity values]`, ordinal per EventStart."""
        texts = [pc.fill_null(self._json_text(table.column(name)), "null")
                 for name in IDENTITY_FIELDS]
        joined = pc.binary_join_element_wise(
            "[", pc.binary_join_element_wise(*texts, ","), "]", "")
        starts = table.column("EventStart").to_pylist()
        return keys_of(pc.cast(joined, pa.binary()).to_pylist(), starts, after)
