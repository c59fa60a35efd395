"""A day part's file: where it is stored (`DayFile`: committed whole or never seen), its name,
and its format (`ParquetPart`: zstd, bounded row groups; `ArrowPart`: the IPC file format).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import secrets
import typing as t

import pyarrow as pa
import pyarrow.parquet as pq

if t.TYPE_CHECKING:
    from tap_fullstory.sdk import StorageTarget

#: Columns (nearly) unique per row: a dictionary would be built, overflow and be dropped for
#: every row group (measured: 17 % of the writer's time with the statistics below, files 6 %
#: larger).
_NO_DICTIONARY = frozenset((
    "EventId", "CustomVars", "EventStart", "PageStart", "SessionStart", "UserCreated", "IndvId",
    "UserId", "SessionId", "PageId", "EventSessionOffset", "EventPageOffset"))


class DayFile:
    """One day's file in the batch storage; committed by `close`, removed by `abort`.

    `StorageTarget.open` writes inside an fsspec transaction (local: a temp file moved into place
    on commit; S3/GCS: the upload is completed on commit), so an aborted file never appears.
    """

    def __init__(self, storage: StorageTarget, name: str) -> None:
        self.storage = storage
        self.name = name
        self.url = storage.get_url(name)
        self._stack = contextlib.ExitStack()
        self.file: t.IO[bytes] = self._stack.enter_context(storage.open(name, "wb"))

    def commit(self) -> str:
        self._stack.close()
        return self.url

    def remove(self) -> None:
        """Delete a committed part (its day failed: no manifest will name it)."""
        root = getattr(self.storage, "_root_path", None)
        with contextlib.suppress(Exception):
            (root / self.name).unlink()  # type: ignore[operator]

    def abort(self, exc: BaseException) -> None:
        with contextlib.suppress(BaseException):
            self._stack.__exit__(type(exc), exc, exc.__traceback__)
        root = getattr(self.storage, "_root_path", None)
        fs = getattr(root, "fs", None)
        if fs is None:
            return
        with contextlib.suppress(Exception):
            if getattr(fs, "_intrans", False):
                fs.transaction.complete(commit=False)  # discard the deferred (partial) upload
        with contextlib.suppress(Exception):
            path = root / self.name  # type: ignore[operator]
            if path.exists():
                path.unlink()


def part_names(prefix: str, stream: str, first_start: dt.datetime, ext: str
               ) -> t.Callable[[int], str]:
    """Names of one day's parts: unique per run and day (a day cut short is completed later in
    new files), numbered in write order."""
    stem = (f"{prefix}{stream}-{first_start:%Y-%m-%d}-{first_start:%H%M%S}-"
            f"{secrets.token_hex(4)}")
    return lambda index: f"{stem}-part{index + 1:04d}.{ext}"


class PartFile(t.Protocol):
    """One part's file format: batches in, closed by `close` (the DayFile is committed after)."""

    def write(self, table: pa.Table, group_rows: int) -> None: ...
    def close(self) -> None: ...


class ParquetPart:
    ext = "parquet"

    def __init__(self, file: t.IO[bytes], schema: pa.Schema) -> None:
        self._writer = pq.ParquetWriter(
            file, schema, compression="zstd", compression_level=1,
            use_dictionary=[n for n in schema.names if n not in _NO_DICTIONARY],
            # min/max where engines prune (timestamps, ids, numbers), not on free text
            write_statistics=[f.name for f in schema
                              if not (pa.types.is_string(f.type)
                                      or isinstance(f.type, pa.ExtensionType))],
            store_schema=True,
        )

    def write(self, table: pa.Table, group_rows: int) -> None:
        self._writer.write_table(table, group_rows)

    def close(self) -> None:
        self._writer.close()


class ArrowPart:
    """Arrow IPC file format (what Meltano's Arrow BATCH convention and target-snowflake read)."""

    ext = "arrow"

    def __init__(self, file: t.IO[bytes], schema: pa.Schema, compression: str | None) -> None:
        options = pa.ipc.IpcWriteOptions(compression=compression)
        self._writer = pa.ipc.new_file(file, schema, options=options)

    def write(self, table: pa.Table, group_rows: int) -> None:
        self._writer.write_table(table, max_chunksize=group_rows)

    def close(self) -> None:
        self._writer.close()
