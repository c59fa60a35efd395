"""Quarantine (on_bad_row=quarantine): rows that cannot be decoded, set aside with their window
and position so that the window can complete and nobody has to edit an export by hand.

One JSON Lines file per window that had bad rows, named after the stream and the window, in
`quarantine_path` or (BATCH mode) the batch storage root. A line per bad row: the window, the
row's number in the export file (NDJSON: its line number), the cause, and the row's raw bytes
(base64, exact; and as text with undecodable bytes replaced, to read and grep). Nothing else:
no URL, no key.

Exactly once: a window's export can be read more than once (a truncated file downloaded again,
rows out of order, the C scanner handing over to the per-record path), and a bad row met again
at the same number is not written again. The file is committed only when the window completes,
and replaces the file of an earlier export of the same window, so a rerun writes the same file.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import tempfile
import typing as t
from pathlib import Path

import orjson

if t.TYPE_CHECKING:
    from tap_fullstory.sdk import StorageTarget
    from tap_fullstory.windows import Window


class _LocalPart:
    """A file in a local directory: written beside its final name, moved into place on commit."""

    def __init__(self, directory: Path, name: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / name
        self._partial = directory / f".{name}.partial"
        self.file: t.IO[bytes] = open(self._partial, "wb")  # noqa: SIM115 - closed by commit/abort

    def commit(self) -> Path:
        self.file.close()
        os.replace(self._partial, self.path)
        return self.path

    def abort(self) -> None:
        self.file.close()
        with contextlib.suppress(OSError):
            self._partial.unlink()


class Store:
    """Where quarantine files go: a local directory (`quarantine_path`), or the batch storage
    (file://, s3://, gs://). Files for the batch storage are staged locally and copied there by
    `flush` once the day's parts are committed: the storage writes through one fsspec transaction
    per filesystem, and a second file written while a part is open would end the part's."""

    def __init__(self, directory: str | None = None, storage: StorageTarget | None = None,
                 prefix: str = "") -> None:
        self.storage = storage
        self.prefix = prefix
        self._staging: tempfile.TemporaryDirectory[str] | None = None
        if directory:
            self.directory = Path(directory)
        else:
            self._staging = tempfile.TemporaryDirectory(prefix="tap-fullstory-quarantine-")
            self.directory = Path(self._staging.name)
        self._pending: list[Path] = []

    def open(self, name: str) -> _LocalPart:
        return _LocalPart(self.directory, name)

    def commit(self, part: _LocalPart) -> str:
        """The part's final location (for the batch storage: where `flush` will copy it)."""
        path = part.commit()
        if self.storage is None:
            return str(path)
        self._pending.append(path)
        return self.storage.get_url(self.prefix + path.name)

    def flush(self) -> None:
        """Copy the staged files to the batch storage (BATCH mode, after a day's commit)."""
        while self._pending:
            assert self.storage is not None
            path = self._pending.pop(0)
            with self.storage.open(self.prefix + path.name, "wb") as out, open(path, "rb") as src:
                shutil.copyfileobj(src, out)
            path.unlink()

    def discard(self) -> None:
        """The day failed: its staged files are not copied (its next export writes them again)."""
        for path in self._pending:
            with contextlib.suppress(OSError):
                path.unlink()
        self._pending.clear()


class Quarantine:
    """One window's bad rows; `add` is the decoder's `on_bad` (`sources.decode.BadRow`)."""

    def __init__(self, store: Store, stream: str, window: Window, export_start: str,
                 export_end: str) -> None:
        self.store = store
        self.name = (f"{stream}-quarantine-{window.start:%Y%m%dT%H%M%SZ}-"
                     f"{window.end:%Y%m%dT%H%M%SZ}.jsonl")
        self.export_start, self.export_end = export_start, export_end
        self._head = {"stream": stream, "export_start": export_start, "export_end": export_end}
        self.rows: list[int] = []
        self._seen: set[int] = set()
        self._part: _LocalPart | None = None

    def add(self, number: int, raw: bytes, cause: str) -> None:
        if number in self._seen:
            return  # the same export read again: this row is in the file already
        self._seen.add(number)
        self.rows.append(number)
        if self._part is None:
            self._part = self.store.open(self.name)
        line = {**self._head, "row": number, "cause": cause, "bytes": len(raw),
                "raw_base64": base64.b64encode(raw).decode(),
                "raw_text": raw.decode("utf-8", "replace")}
        self._part.file.write(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))

    def commit(self) -> str | None:
        """The window is complete: the file takes its place. Returns its location (None: no
        bad rows, no file)."""
        part, self._part = self._part, None
        return self.store.commit(part) if part is not None else None

    def abort(self) -> None:
        """The window did not complete: no file (its next export quarantines the rows again)."""
        part, self._part = self._part, None
        if part is not None:
            part.abort()
