"""JSONL day parts from the C scanner (`day_parts.write_lines`): byte for byte the reference's
parts (`JsonlDayWriter.add`, one orjson line per `RecordMaker` record), cut into the same parts
of exactly `part_rows` lines, where C writes every chunk, where a chunk falls back, where the
scanner stops and the reference resumes, with misfits and deselected columns."""

from __future__ import annotations

import gzip
import json
import typing as t
from pathlib import Path

import pytest

from tests.test_batches import _rows, fallback_rows, needs_scanner, out_of_order_rows, write_window


def _parts(tmp_path: Path, rows: t.Sequence[dict[str, t.Any]], *, fast: bool, part_rows: int,
           compress: bool, drop: t.Sequence[str] = ()) -> tuple[list[bytes], t.Any]:
    """One window's rows into JSONL parts, by C (resumed by the reference where it stops) or
    by the reference alone: (each part's decompressed bytes, the scanner's ChunkRun)."""
    from tap_fullstory.records import RecordMaker
    from tap_fullstory.writers.day_parts import JsonlDayWriter, write_lines

    src = tmp_path / f"export-{fast}.ndjson.gz"
    text = "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in rows)
    src.write_bytes(gzip.compress(text.encode()))
    files: list[Path] = []

    class Part:
        def __init__(self, index: int) -> None:
            path = tmp_path / f"part-{fast}-{index}.jsonl"
            assert len(files) == index
            files.append(path)
            self.url = str(path)
            self.file = path.open("wb")

        def commit(self) -> str:
            self.file.close()
            return self.url

    writer = JsonlDayWriter(Part, list(drop), compress, part_rows)
    maker = RecordMaker(mobile=False, use_keys=True, export_start="2024-01-01T00:00:00Z",
                        export_end="2024-01-02T00:00:00Z", strip_nul=True)
    # a few rows a chunk: many chunks, parts cut inside them
    run = write_window(src, writer, maker, write_lines if fast else None, chunk_bytes=2_000)
    urls = writer.close()
    assert urls == [str(f) for f in files]
    assert writer.rows == len(rows)
    read = gzip.decompress if compress else bytes
    return [read(f.read_bytes()) for f in files], run


def _same(tmp_path: Path, rows: t.Sequence[dict[str, t.Any]], **kwargs: t.Any) -> t.Any:
    fast, run = _parts(tmp_path, rows, fast=True, **kwargs)
    slow, _ = _parts(tmp_path, rows, fast=False, **kwargs)
    assert fast == slow  # same parts, same bytes
    sizes = [part.count(b"\n") for part in fast]
    part_rows = kwargs["part_rows"]
    assert sum(sizes) == len(rows)
    assert sizes[:-1] == [part_rows] * (len(sizes) - 1) and 0 < sizes[-1] <= part_rows
    return run


@needs_scanner
@pytest.mark.parametrize("part_rows", [1, 7, 25, 10**9])
@pytest.mark.parametrize("compress", [False, True])
def test_c_lines_are_the_reference_parts(tmp_path, part_rows, compress) -> None:
    run = _same(tmp_path, _rows(), part_rows=part_rows, compress=compress)
    assert run.complete and run.chunks > 3 and not run.fallbacks  # every chunk by C


@needs_scanner
def test_fallback_chunks_misfits_and_deselected_columns(tmp_path) -> None:
    """A chunk C refuses is the reference's lines in place; misfits (PageId "13", a fraction in
    an integer column) and a deselected column come out as the reference writes them."""
    run = _same(tmp_path, fallback_rows(), part_rows=7, compress=False, drop=["EventTargetText"])
    assert run.complete and sum(run.fallbacks.values()) >= 4
    assert "known field in another case" in run.fallbacks


@needs_scanner
def test_scanner_stops_and_the_reference_resumes(tmp_path) -> None:
    run = _same(tmp_path, out_of_order_rows(), part_rows=7, compress=True)
    assert not run.complete and 0 < run.written < 60
