"""Export files on disk: field selection, serialisation, gzip, and a build cache.

Files are built once per parameter set into a temp directory and streamed from disk, so a multi-GB export never
sits in memory. Serialisation follows hauser's mock (keys sorted, compact, numbers verbatim, UTF-8), which
reproduces hauser's ``json/`` fixtures byte-for-byte.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import queue
import threading
import time
import typing as t
from pathlib import Path

import orjson
from zlib_ng import zlib_ng

from tap_fullstory.fields import STANDARD_FIELDS

from .data import Source, with_misfits
from .individuals import individual_columns, individual_rows
from .values import orjson_default

FORMATS = {"FORMAT_JSON": "json", "FORMAT_NDJSON": "ndjson", "FORMAT_CSV": "csv"}
TYPES = ("TYPE_EVENT", "TYPE_INDIVIDUAL")
WILDCARDS = ("user_*", "evt_*", "page_*")
_SORTED = orjson.OPT_SORT_KEYS
_BAD_JSON_ROW = b'{"EventStart":"2024-01-01T00:00:00.000Z","EventType":"click",<<not json>>}'
_BAD_CSV_ROW = '"unterminated quote,5,x\n'


@dataclasses.dataclass(frozen=True)
class FileSpec:
    """Everything that determines a file's bytes (the cache key)."""

    kind: str  # "export" or "bundle"
    start_us: int | None
    end_us: int | None
    fields: tuple[str, ...] = ()
    fmt: str = "FORMAT_JSON"
    row_type: str = "TYPE_EVENT"
    corrupt_row: int = 0  # 1-based row replaced by invalid data (fault injection); 0 = none
    #: Raw bytes served verbatim (fault injection): (1-based position, bytes, replace?); JSON only.
    raw_rows: tuple[tuple[int, bytes, bool], ...] = ()
    #: Every n-th row (1-based) with values that do not fit their type (fault injection); 0 = none.
    misfit_every: int = 0


class Selector:
    """hauser's mock field selection: exact names, plus user_*/evt_*/page_* prefixes; empty = everything."""

    def __init__(self, fields: t.Sequence[str]) -> None:
        self.everything = not fields
        self.exact = [f for f in fields if f not in WILDCARDS]
        self.prefixes = tuple(f[:-1] for f in fields if f in WILDCARDS)
        self._exact = frozenset(self.exact)

    def keep(self, key: str) -> bool:
        return self.everything or key in self._exact or key.startswith(self.prefixes)

    def allowed(self, universe: t.Iterable[str]) -> frozenset[str] | None:
        """Keys to keep among the source's universe, or None when every key is kept (fast path)."""
        uni = list(universe)
        keep = frozenset(k for k in uni if self.keep(k))
        return None if len(keep) == len(set(uni)) else keep

    def columns(self, universe: t.Sequence[str]) -> list[str]:
        """CSV header: explicit fields in request order, then wildcard matches sorted."""
        if self.everything:
            std = [n for n, _ in STANDARD_FIELDS if n in universe]
            return std + sorted(k for k in universe if k not in std)
        extra = sorted(k for k in universe if k.startswith(self.prefixes) and k not in self._exact) \
            if self.prefixes else []
        return self.exact + extra


def validate_fields(fields: t.Any) -> tuple[str, ...]:
    """The create endpoint's rules: a list of non-empty strings, no duplicates, '*' only in the 3 wildcards."""
    if fields is None:
        return ()
    if not isinstance(fields, list) or not all(isinstance(f, str) and f for f in fields):
        raise ValueError("fields must be a list of non-empty strings")
    seen: set[str] = set()
    for f in fields:
        if f in seen:
            raise ValueError(f"duplicate field {f!r} in fields")
        if "*" in f and f not in WILDCARDS:
            raise ValueError(f"unsupported wildcard {f!r}: only user_*, evt_*, page_* are special values")
        seen.add(f)
    return tuple(fields)


class _GzipSink:
    """gzip (zlib-ng, level 1) in a worker thread: zlib-ng releases the GIL, so generation and deflate overlap."""

    def __init__(self, path: Path, level: int = 2) -> None:
        self._f = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._c = zlib_ng.compressobj(level, zlib_ng.DEFLATED, 31)  # wbits 31 = gzip wrapper, mtime 0
        self._q: queue.Queue[bytes | None] = queue.Queue(maxsize=2)
        self._err: BaseException | None = None
        self._pending: list[bytes] = []
        self._pending_len = 0
        self.raw_bytes = 0
        self._thread = threading.Thread(target=self._run, name="emulator-gzip", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while (chunk := self._q.get()) is not None:
                self._f.write(self._c.compress(chunk))
            self._f.write(self._c.flush())
        except BaseException as exc:  # surfaced in close()
            self._err = exc
            while self._q.get() is not None:
                pass

    def write(self, data: bytes) -> None:
        self.raw_bytes += len(data)
        self._pending.append(data)
        self._pending_len += len(data)
        if self._pending_len >= 32 << 20:  # big chunks: each GIL re-acquire can cost a 5 ms switch interval
            self._q.put(b"".join(self._pending))
            self._pending, self._pending_len = [], 0

    def close(self) -> None:
        if self._pending:
            self._q.put(b"".join(self._pending))
        self._q.put(None)
        self._thread.join()
        self._f.close()
        if self._err:
            raise self._err


def _csv_value(v: t.Any) -> t.Any:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, dict)):
        return orjson.dumps(v, default=orjson_default).decode()
    return getattr(v, "text", v)


def write_file(source: Source, spec: FileSpec, path: Path, progress: t.Callable[[int], None] | None = None) -> int:
    """Build the gzip file for spec at path (atomically); returns the number of rows written."""
    tmp = path.with_suffix(".part")
    sink = _GzipSink(tmp)
    rows_out = 0
    try:
        bundle = spec.kind == "bundle"
        fmt = "FORMAT_JSON" if bundle else spec.fmt
        individual = spec.row_type == "TYPE_INDIVIDUAL"
        sel = Selector(() if bundle else spec.fields)
        batches = individual_rows(source, spec.start_us, spec.end_us) if individual else source.batches(
            spec.start_us, spec.end_us, legacy=bundle)
        allowed = None if bundle else sel.allowed(source.universe()) if not individual else frozenset()
        opt = 0 if bundle else _SORTED
        writer = None
        if fmt == "FORMAT_CSV":
            universe = source.universe()
            if individual:
                universe = individual_columns(universe)
            cols = sel.columns(universe)
            buf = io.StringIO()
            writer = csv.writer(buf, lineterminator="\n")
            writer.writerow(cols)
        elif fmt == "FORMAT_JSON":
            sink.write(b"[")
        pending = sorted(spec.raw_rows)  # raw rows not placed yet, by position
        wrote = False  # any JSON element written yet (a comma goes before the next)
        for batch in batches:
            if individual:
                batch = [{k: v for k, v in r.items() if sel.keep(k)} for r in batch]
            elif allowed is not None:
                batch = [{k: v for k, v in r.items() if k in allowed} for r in batch]
            if writer is not None:
                for i, r in enumerate(batch, rows_out + 1):
                    if i == spec.corrupt_row:
                        buf.write(_BAD_CSV_ROW)
                    else:
                        writer.writerow([_csv_value(r.get(c)) for c in cols])
                out = buf.getvalue().encode()
                buf.seek(0)
                buf.truncate()
            else:
                if spec.misfit_every:
                    every = spec.misfit_every
                    batch = [with_misfits(r, i) if i % every == 0 else r
                             for i, r in enumerate(batch, rows_out + 1)]
                pieces = [orjson.dumps(r, default=orjson_default, option=opt) for r in batch]
                if spec.corrupt_row and rows_out < spec.corrupt_row <= rows_out + len(pieces):
                    pieces[spec.corrupt_row - rows_out - 1] = _BAD_JSON_ROW
                pieces = _place_raw(pieces, rows_out, pending)
                out = _json_pieces(pieces, fmt, wrote)
                wrote = wrote or bool(pieces)
            rows_out += len(batch)
            sink.write(out)
            if progress:
                progress(rows_out)
        if writer is not None and buf.tell():
            sink.write(buf.getvalue().encode())
        if writer is None and pending:  # raw rows past the last row: appended
            sink.write(_json_pieces([raw for _, raw, _ in pending], fmt, wrote))
        if fmt == "FORMAT_JSON":
            sink.write(b"]")
    finally:
        sink.close()
    os.replace(tmp, path)
    return rows_out


def _place_raw(pieces: list[bytes], before: int, pending: list[tuple[int, bytes, bool]]
               ) -> list[bytes]:
    """Put the raw rows whose position falls in this batch (rows before+1 .. before+len) in
    place, inserted or replacing; placed ones leave `pending`."""
    if not pending or pending[0][0] > before + len(pieces):
        return pieces
    out = list(pieces)
    shift = 0  # inserted so far in this batch
    while pending and pending[0][0] <= before + len(pieces):
        position, raw, replace = pending.pop(0)
        index = position - before - 1 + shift
        if replace:
            out[index] = raw
        else:
            out.insert(index, raw)
            shift += 1
    return out


def _json_pieces(pieces: list[bytes], fmt: str, wrote: bool) -> bytes:
    if fmt == "FORMAT_JSON":
        return (b"," if wrote and pieces else b"") + b",".join(pieces)
    return b"".join(p + b"\n" for p in pieces)


@dataclasses.dataclass
class Entry:
    """One cached file: done is set when the build finished (ok or not)."""

    path: Path
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    rows: int = 0
    rows_progress: int = 0
    size: int = 0
    error: str = ""
    seconds: float = 0.0


class FileCache:
    """Builds each FileSpec once (in a worker thread or inline) and remembers the file."""

    def __init__(self, source: Source, directory: Path) -> None:
        self.source, self.dir = source, directory
        self._entries: dict[FileSpec, Entry] = {}
        self._lock = threading.Lock()
        self._n = 0

    def get(self, spec: FileSpec, *, background: bool = True) -> Entry:
        with self._lock:
            entry = self._entries.get(spec)
            if entry is not None:
                return entry
            self._n += 1
            entry = self._entries[spec] = Entry(self.dir / f"file{self._n}.gz")
        if background:
            threading.Thread(target=self._build, args=(spec, entry), name="emulator-build", daemon=True).start()
        else:
            self._build(spec, entry)
        return entry

    def _build(self, spec: FileSpec, entry: Entry) -> None:
        t0 = time.perf_counter()
        try:
            def progress(n: int) -> None:
                entry.rows_progress = n

            entry.rows = write_file(self.source, spec, entry.path, progress)
            entry.size = entry.path.stat().st_size
        except Exception as exc:
            entry.error = f"{type(exc).__name__}: {exc}"
        finally:
            entry.seconds = time.perf_counter() - t0
            entry.done.set()

    def entries(self) -> list[tuple[FileSpec, Entry]]:
        with self._lock:
            return list(self._entries.items())
