"""Snowflake through meltanolabs-target-snowflake 0.20.4 and the fakesnow stand-in (issue #12, item 4).

target-snowflake has no host/port setting, so the target runs in-process under fakesnow's patching of the Snowflake
connector (standins/target-snowflake-fakesnow, in .venv-snowflake from `make snowflake-venv`), its databases in a per-test
directory; queries go through the connector under fakesnow too (standins/fakesnow_sql.py). fakesnow lacks some statements
the target sends; standins/fakesnow_ext.py adds them, and each extension is tested on its own here (with and without it).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

import tests.test_meltano as tm
from tests.test_meltano import API_KEY, END, START, Project, pick_custom_var

ROOT = Path(__file__).resolve().parents[1]
STANDINS = ROOT / "standins"
SF_VENV = Path(os.environ.get("SNOWFLAKE_VENV") or ROOT / ".venv-snowflake")
TARGET = STANDINS / "target-snowflake-fakesnow"
# test_meltano's fixtures: the installed plugins and a scratch copy of the Meltano project per test.
installed, project = tm.installed, tm.project


def sf_sql(steps: list, *, db: Path | None = None, ext: bool = True) -> list[dict]:
    """Run SQL steps through the Snowflake connector under fakesnow (see standins/fakesnow_sql.py)."""
    python = SF_VENV / "bin" / "python"
    if not python.exists():
        pytest.fail(f"{python} missing: run `make snowflake-venv`", pytrace=False)
    argv = [str(python), str(STANDINS / "fakesnow_sql.py"), *(["--db", str(db)] if db else []), *([] if ext else ["--no-ext"])]
    proc = subprocess.run(argv, input=json.dumps(steps), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def rows(result: dict) -> list:
    assert "rows" in result, result.get("error")
    return result["rows"]


DB = {"connect": {"database": "DB", "schema": "S"}}


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """Local files to PUT: CSV, gzip JSON lines (key 1 twice: the later row wins an upsert), Parquet."""
    (tmp_path / "a.csv").write_text("1,x\n2,y\n")
    (tmp_path / "b.csv").write_text("3,z\n")
    docs = [{"k": 1, "v": "a", "o": {"x": "one"}, "ts": "2024-01-01T10:00:00.123000+00:00"},
            {"k": 2, "v": "b", "o": {"x": "two"}, "ts": "2024-01-02T10:00:00+00:00"},
            {"k": 1, "v": "c", "o": {}, "ts": None}]
    with gzip.open(tmp_path / "rows.json.gz", "wt") as f:
        f.write("".join(json.dumps(d) + "\n" for d in docs))
    pq.write_table(pa.table({"a": [1, 2], "b": ["p", "q"]}), tmp_path / "p.parquet")
    return {p.stem.split(".")[0]: p for p in tmp_path.iterdir()}


pytestmark = pytest.mark.services


# --- each fakesnow extension on its own ---------------------------------------------------------------------------


def test_ext_quoted_stage_location(files) -> None:
    steps = [DB, "CREATE STAGE st", f"PUT 'file://{files['a']}' '@st/dir'", "LIST @st",
             "CREATE TABLE t (a INT, b VARCHAR)",
             "COPY INTO t FROM '@st/dir' FILE_FORMAT = (TYPE = CSV)",
             "SELECT a, b FROM t ORDER BY a"]
    out = sf_sql(steps)
    assert [r[0] for r in rows(out[3])] == ["st/dir/a.csv.gz"]
    assert rows(out[5])[0][3] == 2  # rows_loaded
    assert rows(out[6]) == [[1, "x"], [2, "y"]]
    assert "does not start with @" in sf_sql(steps, ext=False)[2]["error"]


def test_ext_user_stage(files) -> None:
    steps = [{"connect": {}},  # no current database or schema: the user stage needs none
             f"PUT 'file://{files['a']}' @~/in", "LIST @~", DB, "CREATE TABLE t (a INT, b VARCHAR)",
             "COPY INTO t FROM @~/in FILE_FORMAT = (TYPE = CSV)", "SELECT a, b FROM t ORDER BY a"]
    out = sf_sql(steps)
    assert rows(out[1])[0][6] == "UPLOADED"
    assert [r[0] for r in rows(out[2])] == ["~/in/a.csv.gz"]
    assert rows(out[6]) == [[1, "x"], [2, "y"]]
    assert "error" in sf_sql(steps, ext=False)[1]


def test_ext_remove(files) -> None:
    out = sf_sql([DB, f"PUT 'file://{files['a']}' @~/a/", f"PUT 'file://{files['b']}' @~/b/",
                  "REMOVE '@~/a/'", "LIST @~", "RM @~/nothing/", "REMOVE @~/b PATTERN = '.*'",
                  "CREATE STAGE st", f"PUT 'file://{files['a']}' @st/x", "REMOVE @st/x", "LIST @st",
                  "REMOVE @missing/x"])
    assert rows(out[3]) == [["a/a.csv.gz", "removed"]]
    assert [r[0] for r in rows(out[4])] == ["~/b/b.csv.gz"]  # b's file is still staged
    assert rows(out[5]) == []
    assert "not implemented" in out[6]["error"]  # PATTERN is refused, nothing removed
    assert rows(out[9]) == [["x/a.csv.gz", "removed"]] and rows(out[10]) == []
    assert "does not exist" in out[11]["error"]
    assert "syntax error" in sf_sql([DB, "REMOVE @~/a/"], ext=False)[1]["error"]


def test_ext_copy_transform(files) -> None:
    steps = [DB, "CREATE STAGE st", f"PUT 'file://{files['rows']}' @st/j",
             "CREATE TABLE t (k NUMBER, v VARCHAR, o VARIANT, ts TIMESTAMP_NTZ)",
             "CREATE FILE FORMAT fj TYPE = 'JSON' COMPRESSION = 'AUTO'",
             "COPY INTO t (k, v, o, ts) FROM (SELECT $1:\"k\"::NUMBER, $1:\"v\"::VARCHAR, $1:\"o\"::VARIANT, "
             "$1:\"ts\"::TIMESTAMP_NTZ FROM @st/j) FILE_FORMAT = (FORMAT_NAME = 'fj')",
             "SELECT k, v, o:x::VARCHAR, ts FROM t ORDER BY k, v",
             # Parquet: $1:"k" is column k; NULL where the file has no such column (e.g. _sdc_* of a batch file)
             f"PUT 'file://{files['p']}' @st/p", "CREATE TABLE tp (a NUMBER, b VARCHAR, m VARCHAR)",
             "COPY INTO tp (a, b, m) FROM (SELECT $1:\"a\"::NUMBER, $1:\"b\"::VARCHAR, $1:\"missing\"::VARCHAR "
             "FROM @st/p) FILE_FORMAT = (TYPE = PARQUET)", "SELECT a, b, m FROM tp ORDER BY a"]
    out = sf_sql(steps)
    assert rows(out[5])[0][3] == 3
    assert rows(out[6]) == [[1, "a", "one", "2024-01-01 10:00:00.123000"], [1, "c", None, None],
                            [2, "b", "two", "2024-01-02 10:00:00"]]
    assert rows(out[10]) == [[1, "p", None], [2, "q", None]]
    plain = sf_sql(steps, ext=False)
    assert "Binder Error" in plain[5]["error"] and "error" in plain[9]


def test_ext_drop_file_format() -> None:
    steps = [DB, "CREATE FILE FORMAT f TYPE = 'JSON'", "DROP FILE FORMAT f", "DROP FILE FORMAT f",
             "DROP FILE FORMAT IF EXISTS f", "CREATE FILE FORMAT f TYPE = 'JSON'", "DROP FILE FORMAT DB.S.f"]
    out = sf_sql(steps)
    assert rows(out[2]) == [["F successfully dropped."]]
    assert "does not exist" in out[3]["error"]  # it was really dropped
    assert "error" not in out[4] and rows(out[6]) == [["F successfully dropped."]]
    assert "syntax error" in sf_sql(steps, ext=False)[2]["error"]


SELECT_FROM_STAGE = ("SELECT $1:\"k\"::NUMBER AS \"k\", $1:\"v\"::VARCHAR AS \"v\" FROM '@st/s' (file_format => fj) "
                     "QUALIFY ROW_NUMBER() OVER (PARTITION BY \"k\" ORDER BY SEQ8() DESC) = 1")


def test_ext_select_from_stage(files) -> None:
    steps = [DB, "CREATE STAGE st", f"PUT 'file://{files['rows']}' @st/s", "CREATE FILE FORMAT fj TYPE = 'JSON'",
             SELECT_FROM_STAGE,
             "CREATE TABLE t (k NUMBER, v VARCHAR)", "INSERT INTO t VALUES (2, 'old'), (3, 'z')",
             f"MERGE INTO t d USING ({SELECT_FROM_STAGE}) s ON d.k = s.\"k\" WHEN MATCHED THEN UPDATE SET d.v = s.\"v\" "
             "WHEN NOT MATCHED THEN INSERT (k, v) VALUES (s.\"k\", s.\"v\")",
             "SELECT k, v FROM t ORDER BY k",
             f"PUT 'file://{files['p']}' @st/p", "CREATE FILE FORMAT fp TYPE = 'PARQUET'",
             "SELECT $1:\"a\"::NUMBER, $1:\"b\"::VARCHAR, $1:\"missing\"::VARCHAR FROM @st/p (file_format => fp)"]
    out = sf_sql(steps)
    assert sorted(rows(out[4])) == [[1, "c"], [2, "b"]]  # key 1: the later row of the file wins
    assert [[int(c) for c in r] for r in rows(out[7])] == [[1, 1]]  # 1 inserted, 1 updated
    assert rows(out[8]) == [[1, "c"], [2, "b"], [3, "z"]]
    assert sorted(rows(out[11])) == [[1, "p", None], [2, "q", None]]
    assert "error" in sf_sql(steps, ext=False)[4]


def test_ext_merge_without_current_schema() -> None:
    steps = [DB, "CREATE TABLE t (k INT, v VARCHAR)", "INSERT INTO t VALUES (1, 'a')",
             {"connect": {"database": "DB"}},
             "MERGE INTO DB.S.t d USING (SELECT 1 AS k, 'b' AS v UNION ALL SELECT 2, 'c') s ON d.k = s.k "
             "WHEN MATCHED THEN UPDATE SET d.v = s.v WHEN NOT MATCHED THEN INSERT (k, v) VALUES (s.k, s.v)",
             "SELECT k, v FROM DB.S.t ORDER BY k"]
    out = sf_sql(steps)
    assert [[int(c) for c in r] for r in rows(out[4])] == [[1, 1]]  # 1 inserted, 1 updated
    assert rows(out[5]) == [[1, "b"], [2, "c"]]
    assert "AssertionError" in sf_sql(steps, ext=False)[4]["error"]


def test_ext_put_compressed_source(files) -> None:
    steps = [DB, "CREATE STAGE st", f"PUT 'file://{files['p']}' @st/p", f"PUT 'file://{files['a']}' @st/c",
             "LIST @st", "CREATE TABLE t (a NUMBER, b VARCHAR)",
             "COPY INTO t (a, b) FROM (SELECT $1:\"a\"::NUMBER, $1:\"b\"::VARCHAR FROM @st/p) "
             "FILE_FORMAT = (TYPE = PARQUET)", "SELECT a, b FROM t ORDER BY a"]
    out = sf_sql(steps)
    assert rows(out[2])[0][1:2] + rows(out[2])[0][4:6] == ["p.parquet", "PARQUET", "PARQUET"]
    assert sorted(r[0] for r in rows(out[4])) == ["st/c/a.csv.gz", "st/p/p.parquet"]  # CSV still gzipped
    assert rows(out[7]) == [[1, "p"], [2, "q"]]
    assert "No magic bytes" in sf_sql(steps, ext=False)[6]["error"]


# --- target-snowflake end to end ------------------------------------------------------------------------------------


def _rows_json(db: Path, schema: str) -> dict:
    """Row count, distinct EventIds, column types and CustomVars of a loaded table."""
    q = sf_sql([{"connect": {"database": "WAREHOUSE", "schema": schema}},
                "SELECT count(*), count(DISTINCT eventid) FROM events",
                "SELECT column_name, data_type FROM information_schema.columns "
                f"WHERE table_schema = '{schema}' AND table_name = 'EVENTS'"], db=db)
    count, distinct = rows(q[1])[0]
    return {"count": count, "distinct": distinct, "types": dict(rows(q[2]))}


def custom_var_rows(db: Path, schema: str, key: str, value: str) -> int:
    """Rows whose CustomVars has key = value, read as a VARIANT object (CustomVars:"key")."""
    q = sf_sql([{"connect": {"database": "WAREHOUSE", "schema": schema}},
                f"SELECT count(*) FROM events WHERE customvars:\"{key}\"::VARCHAR = '{value}'"], db=db)
    return rows(q[1])[0][0]


def target_config(schema: str) -> dict:
    return {"account": "fakesnow", "user": "loader", "password": "x", "database": "WAREHOUSE",
            "default_target_schema": schema, "add_record_metadata": True}


def run_target(db: Path, config: dict, messages: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The wrapper Meltano runs, fed Singer messages directly."""
    cfg = tmp_path / f"target-{config['default_target_schema']}.json"
    cfg.write_text(json.dumps(config))
    proc = subprocess.run([str(TARGET), "--config", str(cfg)], input=messages, capture_output=True, text=True,
                          env={**os.environ, "FAKESNOW_DB_PATH": str(db), "SNOWFLAKE_VENV": str(SF_VENV)},
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return proc


def tap_messages(emu, end: str, tmp_path: Path, batch_config: dict | None = None) -> str:
    config = {"api_url": emu.base_url, "api_key": API_KEY, "start_date": START, "end_date": end,
              "poll_interval": 0.05, **({"batch_config": batch_config} if batch_config else {})}
    cfg = tmp_path / "tap.json"
    cfg.write_text(json.dumps(config))
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "tap-fullstory"), "--config", str(cfg)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_target_arrow_batch_equals_records(make_emulator, tmp_path: Path) -> None:
    """The target's Arrow path: an Arrow IPC file written here with pyarrow (the tap's day schema, CustomVars as
    the arrow.json extension type) in a BATCH message loads the same rows as RECORD messages."""
    emu = make_emulator(start=START, days=1, events_per_hour=12, seed=26)
    end = "2024-01-02T00:00:00Z"
    expected = emu.expected_rows(START, end)
    key, value, n = pick_custom_var(expected)
    db = tmp_path / "fakesnow"
    db.mkdir()

    run_target(db, target_config("FS_RECORD"), tap_messages(emu, end, tmp_path), tmp_path)

    # The tap's Parquet day file, rewritten as an Arrow IPC file (the format of `encoding.format: arrow`).
    batches = tmp_path / "batches"
    out = tap_messages(emu, end, tmp_path, {"encoding": {"format": "parquet"},
                                            "storage": {"root": batches.as_uri()}})
    messages = [json.loads(line) for line in out.splitlines()]
    (batch,) = [m for m in messages if m["type"] == "BATCH"]
    table = pq.read_table(batch["manifest"][0].removeprefix("file://"), arrow_extensions_enabled=True)
    assert table.schema.field("CustomVars").type == pa.json_()
    assert table.schema.field("EventStart").type == pa.timestamp("us", tz="UTC")
    arrow_file = batches / "events-day.arrow"
    with pa.OSFile(str(arrow_file), "wb") as f, pa.ipc.new_file(f, table.schema) as writer:
        writer.write_table(table)
    batch.update(encoding={"format": "arrow", "compression": None}, manifest=[arrow_file.as_uri()])
    proc = run_target(db, target_config("FS_ARROW"), "".join(json.dumps(m) + "\n" for m in messages), tmp_path)
    assert "1 batch manifests" in proc.stderr
    assert not arrow_file.exists(), "clean_up_batch_files (default true) deletes a loaded batch file"

    record, arrow = _rows_json(db, "FS_RECORD"), _rows_json(db, "FS_ARROW")
    assert record["count"] == record["distinct"] == arrow["count"] == arrow["distinct"] == len(expected)
    assert arrow["types"] == record["types"]
    assert record["types"]["CUSTOMVARS"] == "VARIANT" and record["types"]["EVENTSTART"] == "TIMESTAMP_NTZ"
    assert custom_var_rows(db, "FS_RECORD", key, value) == custom_var_rows(db, "FS_ARROW", key, value) == n
    same = sf_sql([{"connect": {"database": "WAREHOUSE"}},
                   "SELECT count(*) FROM FS_RECORD.events r JOIN FS_ARROW.events a USING (eventid) "
                   "WHERE r.eventstart = a.eventstart AND equal_null(r.userid, a.userid) "
                   "AND equal_null(r.eventcumulativelayoutshift, a.eventcumulativelayoutshift) "
                   "AND r.customvars::VARCHAR = a.customvars::VARCHAR"], db=db)
    assert rows(same[1]) == [[len(expected)]]


# --- through Meltano ----------------------------------------------------------------------------------------------


# The loader's executable is the wrapper in .venv-snowflake: nothing to install into the scratch project.
RUN = ("--no-install",)


@pytest.fixture
def sf_project(project: Project) -> Project:
    """test_meltano's scratch Meltano project, its target-snowflake made the fakesnow wrapper (test-only)."""
    doc = yaml.safe_load((project.root / "meltano.yml").read_text())
    loader = next(p for p in doc["plugins"]["loaders"] if p["name"] == "target-snowflake")
    loader["executable"] = str(TARGET)  # absolute: Meltano runs it instead of the plugin venv's target-snowflake
    (project.root / "meltano.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    db = project.root / "fakesnow"
    db.mkdir()
    project.env.update({"FAKESNOW_DB_PATH": str(db), "SNOWFLAKE_VENV": str(SF_VENV),
                        "TARGET_SNOWFLAKE_PASSWORD": "x"})  # the target insists on a credential
    return project


@pytest.mark.meltano
def test_meltano_snowflake_records_arrow_upsert_and_rerun(sf_project: Project, make_emulator) -> None:
    emu = make_emulator(start=START, days=2, events_per_hour=12, seed=25)
    sf_project.point_at(emu)
    expected = emu.expected_rows(START, END)
    key, value, n = pick_custom_var(expected)
    db = Path(sf_project.env["FAKESNOW_DB_PATH"])

    # RECORD messages: tap-fullstory -> target-snowflake (JSONL files staged, MERGE on EventId).
    sf_project.run("run", *RUN, "tap-fullstory", "target-snowflake", timeout=300)
    got = _rows_json(db, "FULLSTORY")
    assert got["count"] == got["distinct"] == len(expected)
    types = got["types"]
    assert types["EVENTID"] == "TEXT" and types["USERID"] == "NUMBER" and types["EVENTSTART"] == "TIMESTAMP_NTZ"
    assert types["EVENTCUMULATIVELAYOUTSHIFT"] == "FLOAT" and types["CUSTOMVARS"] == "VARIANT"
    assert custom_var_rows(db, "FULLSTORY", key, value) == n  # CustomVars is a VARIANT object
    state = sf_project.state("dev:tap-fullstory-to-target-snowflake")
    assert state["singer_state"]["bookmarks"]["events"]["replication_key_value"] == END

    # Second run: the state makes the tap export nothing; no row is added.
    second = sf_project.run("run", *RUN, "tap-fullstory", "target-snowflake", timeout=300)
    assert "Nothing to export" in second.stderr + second.stdout
    assert _rows_json(db, "FULLSTORY")["count"] == len(expected)

    # A full refresh re-exports every window: MERGE on EventId updates the rows, it adds none.
    sf_project.run("run", *RUN, "--full-refresh", "tap-fullstory", "target-snowflake", timeout=300)
    again = _rows_json(db, "FULLSTORY")
    assert again["count"] == again["distinct"] == len(expected)

    # Arrow day batches: tap-fullstory-arrow -> target-snowflake, into its own schema: the same rows.
    arrow_env = {"TARGET_SNOWFLAKE_DEFAULT_TARGET_SCHEMA": "FULLSTORY_ARROW"}
    run = sf_project.run("run", *RUN, "tap-fullstory-arrow", "target-snowflake", env=arrow_env, timeout=300)
    out = run.stdout + run.stderr
    days = re.findall(r"tap-fullstory-arrow\s+Day (\d{4}-\d\d-\d\d): ", out)  # one line per stream and day
    assert {"2024-01-01", "2024-01-02"} <= set(days), out[-4000:]
    assert f"{len(days)} batch manifests" in out, out[-4000:]  # one BATCH message per stream and UTC day
    arrow = _rows_json(db, "FULLSTORY_ARROW")
    assert arrow["count"] == arrow["distinct"] == len(expected)
    assert arrow["types"] == types
    assert custom_var_rows(db, "FULLSTORY_ARROW", key, value) == n
    same = sf_sql([{"connect": {"database": "WAREHOUSE"}},
                   "SELECT count(*) FROM FULLSTORY.events r JOIN FULLSTORY_ARROW.events a USING (eventid) "
                   "WHERE r.eventstart = a.eventstart AND equal_null(r.userid, a.userid) "
                   "AND equal_null(r.pageurl, a.pageurl) AND r.customvars::VARCHAR = a.customvars::VARCHAR"], db=db)
    assert rows(same[1]) == [[len(expected)]]
    assert not list((sf_project.root / "output" / "batches").rglob("*.arrow")), "loaded batch files are deleted"
    rerun = sf_project.run("run", *RUN, "tap-fullstory-arrow", "target-snowflake", env=arrow_env, timeout=300)
    assert "Nothing to export" in rerun.stderr + rerun.stdout
    assert _rows_json(db, "FULLSTORY_ARROW")["count"] == len(expected)
