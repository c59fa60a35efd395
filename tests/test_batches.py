"""BATCH mode (issue #5): one Parquet/JSONL file per UTC day, BATCH then STATE, exact resume."""

from __future__ import annotations

import copy
import datetime as dt
import gzip
import json
import subprocess
import tempfile
import typing as t
from pathlib import Path
from urllib.parse import urlparse

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tap_fullstory import scanner
from tap_fullstory.fields import singer_schema
from tap_fullstory.testing.fixtures import needs_c_scanner
from tests.tapio import TAP, TapRun, run_tap

# s3, gcs, postgres, postgres_db come from tests/services.py (loaded by tests/conftest.py)

START, END = "2024-01-01T00:00:00Z", "2024-01-04T00:00:00Z"
DAY_ENDS = ["2024-01-02T00:00:00Z", "2024-01-03T00:00:00Z", "2024-01-04T00:00:00Z"]
SCHEMA = singer_schema(mobile=False)["properties"]
TS_FIELDS = {n for n, p in SCHEMA.items() if p.get("format") == "date-time"}
ROOT = Path(__file__).resolve().parents[1]


def config(base_url: str, root: str | None = None, fmt: str = "parquet", compression: str = "none",
           **extra: t.Any) -> dict[str, t.Any]:
    cfg: dict[str, t.Any] = {
        "api_key": "test-key", "api_url": base_url, "start_date": START, "end_date": END,
        "export_window": "6h", "poll_interval": 0.01, **extra,
    }
    if root is not None:
        cfg["batch_config"] = {
            "encoding": {"format": fmt, "compression": compression},
            "storage": {"root": root, "prefix": "fs-"},
            **cfg.pop("batch", {}),
        }
    return cfg


def ok(run: TapRun) -> TapRun:
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def local(url: str) -> Path:
    return Path(urlparse(url).path)


def manifests(run: TapRun) -> list[str]:
    return [url for b in run.batches for url in b["manifest"]]


def instant(value: t.Any) -> t.Any:
    if isinstance(value, str):
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value


def normal(record: dict[str, t.Any], names: t.Iterable[str] = SCHEMA) -> dict[str, t.Any]:
    """A record as comparable values: every field present, timestamps as instants, JSON parsed."""
    out = {}
    for name in names:
        value = record.get(name)
        if name in TS_FIELDS:
            value = instant(value)
        elif name == "CustomVars" and isinstance(value, str):
            value = json.loads(value)
        out[name] = value
    return out


def parquet_rows(url: str) -> list[dict[str, t.Any]]:
    return pq.read_table(local(url)).to_pylist()


def jsonl_rows(url: str) -> list[dict[str, t.Any]]:
    path = local(url)
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as f:
        return [orjson.loads(line) for line in f]


def by_id(rows: t.Iterable[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
    return sorted(rows, key=lambda r: r["EventId"])


@pytest.fixture(scope="module")
def record_run(emulator) -> TapRun:
    return ok(run_tap(config(emulator.base_url)))


@pytest.fixture(scope="module")
def parquet_run(emulator, tmp_path_factory) -> TapRun:
    root = tmp_path_factory.mktemp("parquet")
    return ok(run_tap(config(emulator.base_url, root.as_uri())))


# --- day files, state, rerun -------------------------------------------------------------------


def test_three_days_three_batches_each_followed_by_its_days_state(parquet_run) -> None:
    kinds = [m["type"] for m in parquet_run.messages if m["type"] in ("BATCH", "STATE")]
    batch_at = [i for i, k in enumerate(kinds) if k == "BATCH"]
    assert len(batch_at) == 3
    states = [m["value"] for m in parquet_run.messages if m["type"] == "STATE"]
    after = [parquet_run.messages[i] for i in range(len(parquet_run.messages))]
    follow = []
    for i, m in enumerate(after):
        if m["type"] == "BATCH":
            nxt = next(x for x in after[i + 1:] if x["type"] in ("BATCH", "STATE"))
            assert nxt["type"] == "STATE"
            follow.append(nxt["value"]["bookmarks"]["events"]["replication_key_value"])
    assert follow == DAY_ENDS
    assert states[-1]["bookmarks"]["events"] == {
        "replication_key": "ExportStart", "replication_key_value": END}
    assert parquet_run.records == []
    for url, day in zip(manifests(parquet_run), ("2024-01-01", "2024-01-02", "2024-01-03"),
                        strict=True):
        name = local(url).name
        assert name.startswith(f"fs-events-{day}-000000-") and name.endswith(".parquet")
        assert local(url).is_file()


def test_parquet_rows_equal_record_mode(parquet_run, record_run, emulator) -> None:
    files = [r for url in manifests(parquet_run) for r in parquet_rows(url)]
    assert len(files) == len(record_run.records) == len(emulator.expected_rows(START, END)) > 0
    assert [normal(r) for r in by_id(files)] == [normal(r) for r in by_id(record_run.records)]
    # each file holds exactly its day
    for url, day in zip(manifests(parquet_run), ("2024-01-01", "2024-01-02", "2024-01-03"),
                        strict=True):
        assert {r["EventStart"].date().isoformat() for r in parquet_rows(url)} == {day}


def test_parquet_schema_is_explicit(parquet_run) -> None:
    schema = pq.read_schema(local(manifests(parquet_run)[0]))
    assert schema.field("IndvId").type == pa.int64()
    assert schema.field("EventCumulativeLayoutShift").type == pa.float64()
    assert schema.field("EventStart").type == pa.timestamp("us", tz="UTC")
    assert schema.field("PageUrl").type == pa.string()
    assert schema.field("CustomVars").type == pa.json_()
    meta = pq.ParquetFile(local(manifests(parquet_run)[0])).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
    assert "JSON" in str(pq.ParquetFile(local(manifests(parquet_run)[0])).schema.column(
        schema.get_field_index("CustomVars")))


def test_rerun_from_final_state_writes_no_batch(parquet_run, emulator, tmp_path) -> None:
    again = ok(run_tap(config(emulator.base_url, tmp_path.as_uri()), state=parquet_run.final_state))
    assert again.batches == []
    assert again.bookmark() == END
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_jsonl_rows_are_the_record_messages(emulator, record_run, tmp_path, compression) -> None:
    run = ok(run_tap(config(emulator.base_url, tmp_path.as_uri(), "jsonl", compression)))
    urls = manifests(run)
    assert len(urls) == 3
    assert all(u.endswith(".jsonl.gz" if compression == "gzip" else ".jsonl") for u in urls)
    rows = [r for url in urls for r in jsonl_rows(url)]
    assert by_id(rows) == by_id(record_run.records)  # raw records, CustomVars objects
    assert any(r["CustomVars"] for r in rows) and all(isinstance(r["CustomVars"], dict) for r in rows)


# --- cut-short days, empty days, crashes -------------------------------------------------------


def test_cut_short_day_is_completed_by_a_second_file(emulator, tmp_path) -> None:
    first = ok(run_tap(config(emulator.base_url, tmp_path.as_uri(), end_date="2024-01-02T12:00:00Z")))
    assert first.bookmark() == "2024-01-02T12:00:00Z"
    ordered = [m for m in first.messages if m["type"] in ("BATCH", "STATE")]
    last = max(i for i, m in enumerate(ordered) if m["type"] == "BATCH")
    assert ordered[last + 1]["value"]["bookmarks"]["events"]["replication_key_value"] == (
        "2024-01-02T12:00:00Z")
    second = ok(run_tap(config(emulator.base_url, tmp_path.as_uri()), state=first.final_state))
    a, b = manifests(first), manifests(second)
    assert len(a) == 2 and len(b) == 2
    assert local(a[1]).name.startswith("fs-events-2024-01-02-000000-")
    assert local(b[0]).name.startswith("fs-events-2024-01-02-120000-")
    rows = [r for url in a + b for r in parquet_rows(url)]
    assert len(rows) == len(emulator.expected_rows(START, END))
    assert len({r["EventId"] for r in rows}) == len(rows)


def test_day_without_events_writes_no_file_but_moves_state(make_emulator, tmp_path) -> None:
    emu = make_emulator(start="2024-01-02T00:00:00Z", days=1, events_per_hour=20, seed=5)
    run = ok(run_tap(config(emu.base_url, tmp_path.as_uri())))  # 2024-01-01 and -03 are empty
    assert len(run.batches) == 1 and "2024-01-02" in manifests(run)[0]
    values = [s["bookmarks"]["events"].get("replication_key_value") for s in run.states]
    assert DAY_ENDS[0] in values and run.bookmark() == END
    assert [p.name for p in tmp_path.iterdir()] == [local(manifests(run)[0]).name]


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_crash_mid_day_two_redoes_that_day_once(make_emulator, tmp_path, fmt) -> None:
    emu = make_emulator(start=START, days=3, events_per_hour=60, seed=11)
    emu.add_fault("download", "malformed_row", nth=6, row=3)  # window 6 = 2024-01-02 06:00-12:00
    out, spill = tmp_path / "out", tmp_path / "tmp"
    spill.mkdir()
    # batch_size 100: parts of day 2's first window are committed when the day fails
    cfg = config(emu.base_url, out.as_uri(), fmt, "gzip", batch={"batch_size": 100})
    failed = run_tap(cfg, env={"TMPDIR": str(spill)})
    assert failed.returncode != 0
    assert len(failed.batches) == 1 and all("2024-01-01" in u for u in manifests(failed))
    assert failed.bookmark() == DAY_ENDS[0]
    # no part of the failed day is left: neither in the batch root nor as a transaction temp file
    assert sorted(p.name for p in out.iterdir()) == sorted(local(u).name for u in manifests(failed))
    assert [p for p in spill.iterdir() if p.is_file()] == []

    emu.clear_faults()
    resumed = ok(run_tap(cfg, state=failed.final_state))
    days = [{local(u).name[len("fs-events-"):][:10] for u in b["manifest"]}
            for b in failed.batches + resumed.batches]
    assert days == [{"2024-01-01"}, {"2024-01-02"}, {"2024-01-03"}]  # one BATCH per day, once
    urls = manifests(failed) + manifests(resumed)
    read = parquet_rows if fmt == "parquet" else jsonl_rows
    parts = [read(url) for url in urls]
    assert all(0 < len(part) <= 100 for part in parts)
    rows = [r for part in parts for r in part]
    expected = emu.expected_rows(START, END)
    assert len(rows) == len(expected) == len({r["EventId"] for r in rows})
    assert sorted(p.name for p in out.iterdir()) == sorted(local(u).name for u in urls)


# --- DuckDB, selection --------------------------------------------------------------------------


def test_duckdb_reads_the_day_files(parquet_run, emulator) -> None:
    duckdb = pytest.importorskip("duckdb")
    files = [str(local(u)) for u in manifests(parquet_run)]
    con = duckdb.connect()
    per_day = dict(con.execute(
        "SELECT CAST(EventStart AS DATE)::VARCHAR, count(*) FROM read_parquet(?) GROUP BY 1",
        [files]).fetchall())
    expected = emulator.expected_rows(START, END)
    want: dict[str, int] = {}
    for row in expected:
        want[row["EventStart"][:10]] = want.get(row["EventStart"][:10], 0) + 1
    assert per_day == want
    millis = sorted(r[0] for r in con.execute(
        "SELECT epoch_ms(EventStart) % 1000 FROM read_parquet(?)", [files]).fetchall())
    assert millis == sorted(int(r["EventStart"][20:23]) for r in expected)
    assert any(millis)
    plans = sorted(r[0] for r in con.execute(
        "SELECT CustomVars->>'$.evt_plan_str' FROM read_parquet(?) "
        "WHERE json_exists(CustomVars, '$.evt_plan_str')", [files]).fetchall())
    want_plans = sorted(r["evt_plan_str"] for r in expected if "evt_plan_str" in r)
    assert plans == want_plans and want_plans
    assert con.execute("SELECT typeof(CustomVars) FROM read_parquet(?) LIMIT 1",
                       [files]).fetchone()[0] == "JSON"


def test_deselected_field_is_absent_from_the_files(emulator, tmp_path) -> None:
    with tempfile.TemporaryDirectory() as tmp:  # run_tap parses one message a line; not a catalog
        Path(tmp, "config.json").write_text(json.dumps(config(emulator.base_url)))
        discovered = subprocess.run([*TAP, "--config", str(Path(tmp, "config.json")), "--discover"],
                                    capture_output=True, text=True, check=True, timeout=120)
    catalog = json.loads(discovered.stdout)
    for entry in catalog["streams"][0]["metadata"]:
        if entry["breadcrumb"] == ["properties", "PageIp"]:
            entry["metadata"]["selected"] = False
        if entry["breadcrumb"] == []:
            entry["metadata"]["selected"] = True
    run = ok(run_tap(config(emulator.base_url, (tmp_path / "pq").as_uri()),
                     catalog=copy.deepcopy(catalog)))
    names = pq.read_schema(local(manifests(run)[0])).names
    assert "PageIp" not in names and "PageUrl" in names and "CustomVars" in names
    jl = ok(run_tap(config(emulator.base_url, (tmp_path / "jl").as_uri(), "jsonl"), catalog=catalog))
    assert all("PageIp" not in r for r in jsonl_rows(manifests(jl)[0]))


# --- object storage -----------------------------------------------------------------------------


@pytest.mark.services
def test_s3_root(emulator, s3, record_run) -> None:
    import s3fs

    bucket = s3["create_bucket"]("fs-batches")
    params = {**s3["storage_options"]}
    run = ok(run_tap(config(emulator.base_url, f"s3://{bucket}/events", batch={}) | {
        "batch_config": {"encoding": {"format": "parquet", "compression": "none"},
                         "storage": {"root": f"s3://{bucket}/events", "prefix": "fs-",
                                     "params": params}}}, env=s3["env"]))
    urls = manifests(run)
    assert len(urls) == 3 and all(u.startswith(f"s3://{bucket}/events/fs-events-") for u in urls)
    fs = s3fs.S3FileSystem(**s3["storage_options"])
    listed = sorted("s3://" + p for p in fs.ls(f"{bucket}/events"))
    assert listed == sorted(urls)
    rows = 0
    for url in urls:
        with fs.open(url, "rb") as f:
            rows += pq.read_table(f).num_rows
    assert rows == len(record_run.records)


@pytest.mark.services
def test_gcs_root(emulator, gcs, record_run) -> None:
    bucket = gcs["create_bucket"]("fs-batches")
    env = {**gcs["env"]}
    run = ok(run_tap(config(emulator.base_url, None) | {
        "batch_config": {"encoding": {"format": "jsonl", "compression": "gzip"},
                         "storage": {"root": f"gs://{bucket}/events", "prefix": "fs-",
                                     "params": gcs["storage_options"]}}}, env=env))
    urls = manifests(run)
    assert len(urls) == 3 and all(u.startswith(f"gs://{bucket}/events/fs-events-") for u in urls)
    stored = sorted(p.name for p in (Path(gcs["root"]) / bucket / "events").iterdir())
    assert stored == sorted(u.rsplit("/", 1)[1] for u in urls)
    rows = []
    for name in stored:
        rows += [orjson.loads(x) for x in gzip.decompress(
            (Path(gcs["root"]) / bucket / "events" / name).read_bytes()).splitlines()]
    assert by_id(rows) == by_id(record_run.records)


# --- a real SDK target -------------------------------------------------------------------------

TARGET = ROOT / ".venv-pg" / "bin" / "target-postgres"


def load(run: TapRun, postgres, db: str, schema: str) -> None:
    """Pipe a tap run's output into meltanolabs-target-postgres (its own venv, with pyarrow)."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = Path(tmp, "target.json")
        cfg_path.write_text(json.dumps(postgres.target_config(db, default_target_schema=schema)))
        done = subprocess.run([str(TARGET), "--config", str(cfg_path)], input=run.stdout,
                              capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.services
def test_target_postgres_loads_parquet_and_jsonl_like_record_mode(
        emulator, record_run, parquet_run, postgres, postgres_db, tmp_path) -> None:
    import psycopg

    if not TARGET.exists():
        pytest.fail("target-postgres missing: run `make services-venvs`")
    jsonl_run = ok(run_tap(config(emulator.base_url, tmp_path.as_uri(), "jsonl", "gzip")))
    db = postgres_db.rsplit("/", 1)[1]
    for run, schema in ((record_run, "rec"), (parquet_run, "pq"), (jsonl_run, "jl")):
        load(run, postgres, db, schema)
    with psycopg.connect(postgres_db) as con:
        columns = [r[0] for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'rec' "
            "AND table_name = 'events' AND column_name NOT LIKE '\\_sdc\\_%' "
            "ORDER BY ordinal_position").fetchall()]
        cv = next(c for c in columns if c.lower().replace("_", "") == "customvars")
        eid = next(c for c in columns if c.lower().replace("_", "") == "eventid")
        typed = [c for c in columns if c != cv]
        assert len(typed) >= 60
        counts = [con.execute(f"SELECT count(*) FROM {s}.events").fetchone()[0]
                  for s in ("rec", "pq", "jl")]
        assert counts == [len(record_run.records)] * 3
        # `number` fields: the Parquet double is the RECORD value bit for bit (checked above), but
        # the target binds a Python float, which PostgreSQL casts to its numeric column with 15
        # significant digits (JSON text keeps all 17): compare at that precision.
        numbers = {n for n, p in SCHEMA.items() if "number" in p["type"]}
        cols = ", ".join(f'"{c}"::float8::numeric' if c in numbers else f'"{c}"' for c in typed)
        for schema in ("pq", "jl"):
            diff = con.execute(
                f"SELECT count(*) FROM (SELECT {cols} FROM rec.events "
                f"EXCEPT ALL SELECT {cols} FROM {schema}.events) d").fetchone()[0]
            if diff:
                bad = {c: con.execute(
                    f'SELECT r."{c}", o."{c}" FROM rec.events r JOIN {schema}.events o '
                    f'USING ("{eid}") WHERE r."{c}" IS DISTINCT FROM o."{c}" LIMIT 2').fetchall()
                    for c in typed if c not in numbers}
                bad = {c: v for c, v in bad.items() if v}
                pytest.fail(f"{schema}: {diff} rows differ from RECORD mode: {bad}")
        # JSONL keeps CustomVars a jsonb object, exactly as RECORD mode
        assert con.execute(
            f'SELECT count(*) FROM rec.events r JOIN jl.events j USING ("{eid}") '
            f'WHERE r."{cv}" IS DISTINCT FROM j."{cv}"').fetchone()[0] == 0
        # Parquet: the JSON-typed column reaches the target as text and lands as a jsonb *string*
        kinds = dict(con.execute(
            f'SELECT jsonb_typeof("{cv}"), count(*) FROM pq.events GROUP BY 1').fetchall())
        assert set(kinds) == {"string"}, kinds
        assert con.execute(
            f'SELECT count(*) FROM rec.events r JOIN pq.events p USING ("{eid}") '
            f'WHERE r."{cv}" IS DISTINCT FROM (p."{cv}" #>> \'{{}}\')::jsonb').fetchone()[0] == 0


# --- the C scanner's columnar path (columnar.write_columns) against the reference -----------


def _day_file(tmp_path: Path, rows: t.Sequence[dict[str, t.Any] | str], fast: bool,
              chunk_bytes: int = 2_000, strip_nul: bool = True) -> tuple[pa.Table, t.Any]:
    """One window's rows written as the day batch would write them: the C scanner (resumed by
    the reference where it stops) or the reference alone. A row given as a str is written
    verbatim (raw JSON text). Returns the table and the scanner's `ChunkRun` (None: reference)."""

    from tap_fullstory.records import RecordMaker
    from tap_fullstory.writers.columnar import ColumnarDayWriter, write_columns
    from tap_fullstory.writers.columns import _ARROW, property_kind
    from tap_fullstory.writers.part_files import ParquetPart

    src = tmp_path / f"export-{fast}.ndjson.gz"
    text = "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False,
                                                           separators=(",", ":"))) + "\n"
                   for r in rows)
    src.write_bytes(gzip.compress(text.encode()))
    dst = tmp_path / f"day-{fast}.parquet"
    kinds = [property_kind(SCHEMA[n]) for n in SCHEMA]
    schema = pa.schema([pa.field(n, _ARROW[k]) for n, k in zip(SCHEMA, kinds, strict=True)])

    class File:
        url = str(dst)

        def __init__(self, index: int) -> None:
            assert index == 0  # one part
            self.file = dst.open("wb")

        def commit(self) -> str:
            self.file.close()
            return self.url

    writer = ColumnarDayWriter(File, lambda f: ParquetPart(f, schema), schema, kinds,
                               part_rows=10**9, row_group_rows=7,
                               all_names=SCHEMA)
    maker = RecordMaker(mobile=False, use_keys=True, export_start="2024-01-01T00:00:00Z",
                        export_end="2024-01-02T00:00:00Z", strip_nul=strip_nul)
    run = write_window(src, writer, maker, write_columns if fast else None, chunk_bytes)
    writer.close()
    return pq.read_table(dst), run


def write_window(src: Path, writer: t.Any, maker: t.Any, fast: t.Callable[..., t.Any] | None,
                 chunk_bytes: int) -> t.Any:
    """One window's export into a day writer as the stream writes it: the C path `fast` (small
    chunks) and the reference resuming after the rows it wrote (keys over the whole window when
    rows are out of order, as EventsStream._window_records), or the reference alone (`fast`
    None). Returns the scanner's ChunkRun (None: reference)."""
    from tap_fullstory.keys import EventKeyer, OutOfOrderError
    from tap_fullstory.sources.decode import iter_rows

    run, written = None, 0
    if fast is not None:
        saved = scanner.CHUNK_BYTES
        scanner.CHUNK_BYTES = chunk_bytes
        try:
            run = fast(str(src), writer, maker)
        finally:
            scanner.CHUNK_BYTES = saved
        written = run.written
    if run is None or not run.complete:
        for whole in (False, True):
            try:
                records = list(maker.records(iter_rows(str(src), loads=maker.loads),
                                             EventKeyer(whole_window=whole), written))
            except OutOfOrderError:
                continue
            break
        for record in records:
            writer.add(record)
    return run


def _bits(table: pa.Table) -> list[t.Any]:
    """Rows with floats as their bit patterns (-0.0 == 0.0 in Python; not in a file)."""
    import struct

    return [{k: struct.pack("<d", v) if isinstance(v, float) else v for k, v in row.items()}
            for row in table.to_pylist()]


needs_scanner = needs_c_scanner


def _rows(n: int = 60, tweaks: dict[int, dict[str, t.Any]] | None = None
          ) -> list[dict[str, t.Any]]:
    rows = []
    for i in range(n):
        row: dict[str, t.Any] = {
            # three rows per EventStart, identical on the identity fields: ordinals 0, 1, 2
            "EventStart": f"2024-01-01T00:00:{i // 3:02d}.500Z", "EventType": "click",
            "UserId": 7 + i // 3 % 4, "SessionId": 11, "PageId": 13, "EventPageOffset": i // 3,
            "EventTargetText": ['Gr\u00f6\u00dfe "XL"\nnext', "back\\slash\ttab", "\u00e9"][i // 3 % 3],
            "PageStart": "2024-01-01T00:00:00.000Z", "EventCumulativeLayoutShift": 0.25 * i,
            "user_plan_str": f"plan {i}", "user_ltv_real": 10.5 + i, "user_ids_ints": [i, 2],
            "user_tags_strs": ["a\"b", "c"], "user_vip_bool": i % 2 == 0, "user_empty": [],
            "evt_count_int": i,
        }
        if i % 5:
            del row["user_plan_str"]
        row.update((tweaks or {}).get(i, {}))
        rows.append(row)
    return rows


def _same(tmp_path: Path, rows: list[dict[str, t.Any]]) -> t.Any:
    fast, run = _day_file(tmp_path, rows, fast=True)
    slow, _ = _day_file(tmp_path, rows, fast=False)
    assert fast.schema.equals(slow.schema)
    assert _bits(fast) == _bits(slow)
    return run


@needs_scanner
def test_scanner_writes_what_the_reference_writes(tmp_path) -> None:
    run = _same(tmp_path, _rows())
    assert run.complete and run.chunks > 1 and not run.fallbacks  # every chunk by C


@needs_scanner
def test_scanner_takes_null_and_integral_values(tmp_path) -> None:
    """C tells null from absent and keeps each number's own text: no chunk falls back."""
    rows = _rows(tweaks={5: {"user_plan_str": None}, 40: {"user_ltv_real": 3},
                         41: {"user_ltv_real": 4.0}, 50: {"user_ids_ints": [1, None]}})
    run = _same(tmp_path, rows)
    assert run.complete and not run.fallbacks


@needs_scanner
def test_scanner_falls_back_per_chunk(tmp_path) -> None:
    """A known field in another case, a non-canonical timestamp, a nested object, an integer
    beyond 64 bits: only that chunk takes the reference, with the same values, counted per
    reason. A type mismatch (PageId "13") is the misfit rule's: C takes it, the same way."""
    run = _same(tmp_path, fallback_rows())
    assert run.complete and sum(run.fallbacks.values()) >= 4
    assert "known field in another case" in run.fallbacks


def fallback_rows() -> list[dict[str, t.Any]]:
    """A row per reason to refuse a chunk, and a misfit C takes (PageId "13")."""
    return _rows(tweaks={3: {"eventSubType": "x"}, 20: {"PageStart": "2024-01-01T01:00:00+01:00"},
                         33: {"page_obj": {"a": 1}}, 45: {"UserId": 2**70}, 50: {"PageId": "13"},
                         52: {"EventPageOffset": 1.5}})


def out_of_order_rows() -> list[dict[str, t.Any]]:
    rows = _rows()
    rows[40]["EventStart"] = "2023-12-31T00:00:00.000Z"  # out of order: whole-window keys
    return rows


@needs_scanner
def test_scanner_stops_where_the_reference_must_decide(tmp_path) -> None:
    run = _same(tmp_path, out_of_order_rows())
    assert not run.complete and run.written < 60
