"""Property test of the misfit rule (issue #20): arbitrary JSON values in every catalogue field.

For any rows, the records validate against the tap's own catalogue schema as the SDK's targets
check them (Draft 2020-12 with the date-time format checked, and the date-time parse every SDK
sink runs); every original value is reachable in its row (its column, or CustomVars under its
name); RECORD (C scanner and reference), Parquet, Arrow and JSONL give the same rows (the C
scanner may refuse a chunk: the reference then writes it).
"""

from __future__ import annotations

import io
import json
import typing as t

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tap_fullstory import scanner
from tap_fullstory.fields import (
    INDIVIDUAL_FIELDS,
    export_fields,
    individuals_schema,
    normalize_timestamp,
    singer_schema,
)
from tap_fullstory.keys import OutOfOrderError
from tap_fullstory.records import RecordMaker
from tests.fuzz.paths import MODES, Paths
from tests.test_misfits import check_originals, check_records, comparable

KINDS = dict(export_fields(mobile=True))
IKINDS = dict(INDIVIDUAL_FIELDS)
PATHS = {mode.name: Paths(mode) for mode in MODES}
SCHEMA = singer_schema(mobile=True)

_text = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
                max_size=12)
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False), _text,
    st.sampled_from(["", "2024-01-01T00:00:01.000Z", "2024-01-01T00:00:01Z", "yesterday",
                     "2024-02-30T00:00:00.000Z", "2024-01-01T01:00:00+01:00", "0", "1.5",
                     "2024-01-01T00:00:01.1234567Z", "2024-01-01"]),
    st.sampled_from([2**53, 2**53 + 1, -(2**53) - 1, 2**63 - 1, 2**63, 1.0, -0.0, 1e300]),
)
_nested = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(_text, inner, max_size=3), max_leaves=6)
#: Mostly scalars and lists: an object anywhere in a row makes the C scanner refuse the chunk
#: (the reference then writes it), and C's own output must be compared often too.
JSON = st.one_of(_scalars, _scalars, _scalars, st.lists(_scalars, max_size=3), _nested)


def rows_of(fields: list[str]) -> st.SearchStrategy[list[dict[str, t.Any]]]:
    return st.lists(st.dictionaries(st.sampled_from([*fields, "evt_x_str", "user_y"]), JSON,
                                    max_size=8), min_size=1, max_size=4)


def in_event_order(rows: list[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
    """Rows in the order exports have: EventStart ascending as EventId's keyer compares it."""
    return sorted(rows, key=lambda r: (r.get("EventStart") is not None,
                                       str(normalize_timestamp(r.get("EventStart")))))


def ndjson(rows: list[dict[str, t.Any]]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def decoded(chunk: bytes) -> list[dict[str, t.Any]]:
    """The rows as the tap's decoder reads them (what "original" means)."""
    return [orjson.loads(line) for line in chunk.splitlines()]


def through_files(table: pa.Table) -> dict[str, list[dict[str, t.Any]]]:
    """A day writer's table through a Parquet file and an Arrow IPC file, read back."""
    parquet, arrow = io.BytesIO(), io.BytesIO()
    pq.write_table(table, parquet)
    with pa.ipc.new_file(arrow, table.schema) as writer:
        writer.write_table(table)
    return {"parquet": pq.read_table(io.BytesIO(parquet.getvalue())).to_pylist(),
            "arrow": pa.ipc.open_file(io.BytesIO(arrow.getvalue())).read_all().to_pylist()}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows_of(list(KINDS)))
def test_events_any_values(rows: list[dict[str, t.Any]]) -> None:
    chunk = ndjson(in_event_order(rows))
    originals = decoded(chunk)
    for name, paths in PATHS.items():
        mode = paths.mode
        try:
            records = paths.reference_records(chunk)
        except OutOfOrderError:  # before the EventStart the chunk follows: the window's
            assert mode.after is not None  # reference re-keys it (test_core), not this test
            continue
        if mode.record:  # RECORD: the records as a target reads them
            check_records(records, SCHEMA)
            if not mode.drop:  # every original reachable, with nothing deselected
                for record, row in zip(records, originals, strict=True):
                    check_originals(record, row, dict(export_fields(mobile=mode.mobile)))
        else:  # Parquet, Arrow and JSONL files hold the same rows as the RECORD records
            files = through_files(paths.reference_table(chunk))
            files["jsonl"] = [orjson.loads(line) for line in paths.jsonl_lines(chunk).splitlines()]
            names = paths.schema.names
            for fmt, written in files.items():
                assert [comparable(r, names) for r in written] == \
                    [comparable(r, names) for r in records], fmt
        if scanner.AVAILABLE:  # the C scanner: the reference's exact output, or a refusal
            got = paths.scanner(chunk)
            assert got[0] == "refused" or got == paths.reference(chunk), name


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows_of(list(IKINDS)))
def test_individuals_any_values(rows: list[dict[str, t.Any]]) -> None:
    """Individual rows (no C scanner): records validate and keep every original. A row without
    a valid IndvId never reaches the record maker (it is a bad row: test_misfits)."""
    maker = RecordMaker(mobile=False, use_keys=False, fields=INDIVIDUAL_FIELDS,
                        export_start="2024-01-01T00:00:00Z", export_end="2024-01-02T00:00:00Z")
    originals = decoded(ndjson(rows))
    keyed = [dict(r, IndvId=i) for i, r in enumerate(originals, 1)]
    records = [orjson.loads(orjson.dumps(r)) for r in maker.records(dict(r) for r in keyed)]
    check_records(records, individuals_schema())
    for record, row in zip(records, keyed, strict=True):
        check_originals(record, row, IKINDS)
