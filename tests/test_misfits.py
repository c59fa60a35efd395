"""The misfit rule (issue #20, docs/misfits.md) end to end through the tap's CLI: an export whose
values do not all fit the catalogue's types (the emulator's `misfit_values` fault) gives records
that validate against the tap's own schema as the SDK's targets check them, the same rows in
RECORD (C scanner or not), Parquet, Arrow and JSONL, every original reachable in its row, one
WARNING per window and the `misfit_value_count` metric."""

from __future__ import annotations

import datetime as dt
import json
import typing as t

import pyarrow as pa
import pytest
from jsonschema import Draft202012Validator
from singer_sdk.helpers._compat import datetime_fromisoformat

from tap_fullstory import scanner
from tap_fullstory.fields import (
    CUSTOM_VARS,
    FLOAT,
    INDIVIDUAL_FIELDS,
    INT,
    STR,
    TS,
    export_fields,
    individuals_schema,
    singer_schema,
)
from tap_fullstory.fits import MISFIT, Fitter, fit_value
from tap_fullstory.testing.data import with_misfits
from tests.tapio import TapRun, run_tap
from tests.test_batches import config, jsonl_rows, local, manifests, ok, parquet_rows

START, END = "2024-01-01T00:00:00Z", "2024-01-01T12:00:00Z"
WINDOWS = [("2024-01-01T00:00:00Z", "2024-01-01T06:00:00Z"),
           ("2024-01-01T06:00:00Z", "2024-01-01T12:00:00Z")]
EVERY = 5  # every 5th row of each export gets three misfit values
KINDS = dict(export_fields(mobile=False))


# --- the rule itself ----------------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "value", "expected"), [
    (INT, 5, 5), (INT, -(2**63), -(2**63)), (INT, 2**63 - 1, 2**63 - 1), (INT, "", None),
    (INT, None, None), (INT, 1.5, MISFIT), (INT, 2.0, MISFIT), (INT, 2**63, MISFIT),
    (INT, "5", MISFIT), (INT, True, MISFIT), (INT, [1], MISFIT), (INT, {"a": 1}, MISFIT),
    (FLOAT, 0.5, 0.5), (FLOAT, 3, 3), (FLOAT, 2**53, 2**53), (FLOAT, -(2**53), -(2**53)),
    (FLOAT, 2**53 + 1, MISFIT), (FLOAT, "", None), (FLOAT, "0.5", MISFIT), (FLOAT, False, MISFIT),
    (STR, "", ""), (STR, "x", "x"), (STR, 0, MISFIT), (STR, ["x"], MISFIT), (STR, None, None),
    (TS, "2020-08-27T06:20:26.913Z", "2020-08-27T06:20:26.913Z"),
    (TS, "2020-08-27T08:20:26+02:00", "2020-08-27T06:20:26.000Z"),
    (TS, "2020-08-27 06:20:26.123456z", "2020-08-27T06:20:26.123456Z"),
    (TS, "", None), (TS, "yesterday", MISFIT), (TS, "2020-08-27", MISFIT),
    (TS, "2020-08-27T06:20:26.1234567Z", MISFIT),  # would be truncated: not changed silently
    (TS, "2020-02-30T00:00:00.000Z", MISFIT), (TS, "0001-01-01T00:00:00+01:00", MISFIT),
    (TS, "20200827T062026Z", MISFIT), (TS, 1_598_509_226_913, MISFIT), (TS, True, MISFIT),
])
def test_fit_value(kind: str, value: t.Any, expected: t.Any) -> None:
    got = fit_value(kind, value)
    assert got is MISFIT if expected is MISFIT else (got == expected and type(got) is type(expected))


def test_fitter_decides_each_row_whatever_it_remembers() -> None:
    """Rows of one shape share a plan and timestamps are memoised: each row is still decided on
    its own values (an integer out of range, a date that does not exist, the same text again)."""
    fitter = Fitter(export_fields(mobile=False))
    rows = [{"PageId": 5, "EventCumulativeLayoutShift": 3, "PageStart": "2024-01-01T00:00:00.000Z"},
            {"PageId": 2**63, "EventCumulativeLayoutShift": 2**53 + 1,
             "PageStart": "2024-02-30T00:00:00.000Z"},
            {"PageId": 6, "EventCumulativeLayoutShift": 2**53, "PageStart": "2024-01-01T00:00:00.000Z"},
            {"PageId": 7, "EventCumulativeLayoutShift": 1, "PageStart": "2024-01-01T01:00:00+01:00"},
            {"PageId": 7, "EventCumulativeLayoutShift": 1, "PageStart": "2024-01-01T01:00:00+01:00"}]
    fitted = [dict(row) for row in rows]
    out = [(cols, fitter.fit(cols, {})) for cols in fitted]
    assert [custom for _, custom in out] == [
        {}, {"EventCumulativeLayoutShift": 2**53 + 1, "PageId": 2**63,
             "PageStart": "2024-02-30T00:00:00.000Z"}, {}, {}, {}]
    assert [cols["PageStart"] for cols, _ in out] == [
        "2024-01-01T00:00:00.000Z", None, "2024-01-01T00:00:00.000Z", "2024-01-01T00:00:00.000Z",
        "2024-01-01T00:00:00.000Z"]
    assert fitter.take_counts() == {"PageId": 1, "EventCumulativeLayoutShift": 1, "PageStart": 1}


# --- checks ---------------------------------------------------------------------------------------

def check_records(records: list[dict], schema: dict) -> None:
    """Every record as the SDK's targets check it: the JSON Schema validator they use (with the
    date-time format checked), and the date-time parse every SDK sink runs on each record."""
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    assert "date-time" in Draft202012Validator.FORMAT_CHECKER.checkers  # rfc3339-validator
    stamps = [name for name, p in schema["properties"].items() if p.get("format") == "date-time"]
    for record in records:
        validator.validate(record)
        for name in stamps:
            if record.get(name) is not None:
                datetime_fromisoformat(record[name])


def check_originals(record: dict, source: dict, kinds: dict[str, str]) -> int:
    """Each value of the export row is in the record: its column (as the rule types it), or,
    when it does not fit, unchanged in CustomVars under its name. Returns the misfits."""
    misfits = 0
    for name, value in source.items():
        if name not in kinds:
            assert record[CUSTOM_VARS][name] == value
            continue
        fitted = fit_value(kinds[name], value)
        if fitted is MISFIT:
            assert record[name] is None
            assert record[CUSTOM_VARS][name] == value and type(record[CUSTOM_VARS][name]) is type(value)
            misfits += 1
        else:
            assert record[name] == fitted and type(record[name]) is type(fitted), name
            assert name not in record[CUSTOM_VARS]
    return misfits


def served_rows(emu: t.Any, start: str, end: str) -> list[dict]:
    """An export's rows as the fault serves them."""
    return [with_misfits(r, i) if i % EVERY == 0 else r
            for i, r in enumerate(emu.expected_rows(start, end), 1)]


NAMES = list(singer_schema(mobile=False)["properties"])


def comparable(row: dict, names: t.Iterable[str] = NAMES) -> dict:
    """A row from any mode as plain values: every column (absent = null), timestamps as
    instants, CustomVars as an object."""
    out = {}
    for name in names:
        value = row.get(name)
        if isinstance(value, str) and (KINDS.get(name) == TS or name in ("ExportStart", "ExportEnd")):
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        elif name == CUSTOM_VARS and isinstance(value, str):
            value = json.loads(value)
        out[name] = value
    return out


# --- events through the tap -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def misfit_emulator(make_emulator_module) -> t.Any:
    emu = make_emulator_module(seed=3, start=START, days=1)
    emu.add_fault("download", "misfit_values", times=10**6, every=EVERY)
    return emu


def tap_config(emu: t.Any, root: str | None = None, fmt: str = "parquet", **extra: t.Any
               ) -> dict[str, t.Any]:
    return config(emu.base_url, root, fmt, start_date=START, end_date=END, **extra)


@pytest.fixture(scope="module")
def record_runs(misfit_emulator) -> dict[bool, TapRun]:
    return {c: ok(run_tap(tap_config(misfit_emulator, c_scanner=c))) for c in (True, False)}


def test_record_mode_records_fit_the_schema_and_keep_every_original(record_runs, misfit_emulator
                                                                    ) -> None:
    """RECORD mode, C scanner and reference alike: today "yesterday", "abc", 1.5 and "" went
    through as they were, and a validating target stopped the run."""
    if not scanner.AVAILABLE:
        pytest.skip("C scanner not built")
    fast, reference = record_runs[True], record_runs[False]
    assert fast.records == reference.records  # byte-identical paths give the same records
    check_records(reference.records, singer_schema(mobile=False))
    source = [row for start, end in WINDOWS for row in served_rows(misfit_emulator, start, end)]
    assert len(source) == len(reference.records) > 100
    misfits = sum(check_originals(record, row, KINDS)
                  for record, row in zip(reference.records, source, strict=True))
    assert misfits > len(source) // EVERY  # about two a misfit row ("" is not one)
    for run in (fast, reference):
        warnings = [line for line in run.stderr.splitlines()
                    if "did not fit their column's type" in line and "WARNING" in line]
        assert len(warnings) == len(WINDOWS), warnings  # one per window
        counted = [json.loads(line.split("METRIC: ", 1)[1]) for line in run.stderr.splitlines()
                   if "METRIC: " in line and "misfit_value_count" in line]
        assert sum(m["value"] for m in counted) == misfits
        assert {m["tags"]["field"] for m in counted} >= {"PageNumErrors", "UserCreated"}


@pytest.mark.parametrize("fmt", ["parquet", "arrow", "jsonl"])
def test_batch_files_hold_the_record_rows(fmt, record_runs, misfit_emulator, tmp_path) -> None:
    """Parquet, Arrow and JSONL day files: the same rows as RECORD mode. Today Parquet wrote 1
    for PageNumErrors 1.5 (silently) and dropped what it could not type."""
    run = ok(run_tap(tap_config(misfit_emulator, tmp_path.as_uri(), fmt)))
    rows: list[dict] = []
    for url in manifests(run):
        if fmt == "parquet":
            rows += parquet_rows(url)
        elif fmt == "arrow":
            with pa.memory_map(str(local(url))) as source:
                rows += pa.ipc.open_file(source).read_all().to_pylist()
        else:
            rows += jsonl_rows(url)
    records = record_runs[False].records
    assert len(rows) == len(records)
    assert [comparable(r) for r in rows] == [comparable(r) for r in records]
    assert any(r[CUSTOM_VARS] and "PageNumErrors" in comparable(r)[CUSTOM_VARS] for r in rows)
    assert "do not fit type" not in run.stderr  # the writers' own nulling is never needed


# --- individuals ----------------------------------------------------------------------------------

IKINDS = dict(INDIVIDUAL_FIELDS)


def test_individuals_fit_and_keep_every_original(make_emulator, hauser_dir) -> None:
    """An individual whose creation time the emulator does not know (hauser's rows carry no
    UserCreated) has Created null: today "" stopped every run of target-postgres ("Could not
    parse value '' for field 'Created'"). With misfit values served, the records still fit."""
    emu = make_emulator(rows_file=hauser_dir / "raw.json")
    rows = emu.expected_individuals(None, None)
    assert rows and all(r["Created"] is None for r in rows)
    assert not [(r["IndvId"], k) for r in rows for k, v in r.items() if v == ""]
    begin, end = "2010-01-01T00:00:00Z", "2030-01-01T00:00:00Z"
    cfg = {"api_key": "test-key", "api_url": emu.base_url, "start_date": begin,
           "end_date": end, "export_window": "24h", "poll_interval": 0.01}
    emu.add_fault("download", "misfit_values", times=10**6, every=2)
    run = ok(run_tap(cfg, catalog=individuals_catalog(cfg)))
    records = [m["record"] for m in run.messages if m["type"] == "RECORD"]
    assert len(records) == len(rows)
    check_records(records, individuals_schema())
    served = [with_misfits(r, i) if i % 2 == 0 else r for i, r in enumerate(rows, 1)]
    assert sum(check_originals(rec, row, IKINDS) for rec, row in zip(records, served, strict=True))
    assert not any("Created" in rec[CUSTOM_VARS] and rec[CUSTOM_VARS]["Created"] == ""
                   for rec in records)  # "" in a typed column is null, not an original to keep
    assert "did not fit their column's type" in run.stderr


@pytest.mark.parametrize("key", ["abc", 1.5, None, ""])
def test_an_individual_without_a_valid_key_is_a_bad_row(make_emulator, tmp_path, key) -> None:
    """The key cannot be null: such a row fails the run with on_bad_row=fail (in one line,
    naming the cause) and is set aside with on_bad_row=quarantine; the others load."""
    emu = make_emulator(seed=5, start="2024-01-01", days=1, events_per_hour=10, users=5)
    row = {"IndvId": key, "Created": "2024-01-01T00:00:00.000Z", "NumEvents": 1}
    emu.add_fault("download", "raw_row", times=10**6, raw=json.dumps(row).encode(), row=1)
    cfg = {"api_key": "test-key", "api_url": emu.base_url, "start_date": "2024-01-01T00:00:00Z",
           "end_date": "2024-01-02T00:00:00Z", "poll_interval": 0.01}
    failed = run_tap(cfg, catalog=individuals_catalog(cfg))
    assert failed.returncode != 0
    assert "an individual without a valid IndvId" in failed.stderr
    cfg.update(on_bad_row="quarantine", quarantine_path=str(tmp_path))
    run = ok(run_tap(cfg, catalog=individuals_catalog(cfg)))
    records = [m["record"] for m in run.messages if m["type"] == "RECORD"]
    assert records and all(isinstance(r["IndvId"], int) for r in records)
    check_records(records, individuals_schema())
    (quarantined,) = tmp_path.glob("individuals-quarantine-*.jsonl")
    assert "an individual without a valid IndvId" in quarantined.read_text()


def individuals_catalog(cfg: dict) -> dict:
    from tests.test_individuals import catalog

    return catalog(cfg, "individuals")
