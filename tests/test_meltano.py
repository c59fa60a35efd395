"""The Meltano project end to end (issue #6): meltano.yml + plugins/ lock files + stock loaders, offline.

Plugins are installed once per session with `meltano install` in the repository's own project (idempotent, a few
seconds with a warm uv cache): the extractor (`pip_url: -e .`) and the loaders target-duckdb, target-postgres,
target-jsonl and target-bigquery (never target-redshift: git-only). Each test then runs Meltano in its own scratch
copy of the project (meltano.yml, plugins/) whose .meltano/extractors and .meltano/loaders are symlinks to those
installed venvs, so every test has its own system database (state), output/ directory and run files, and tests
never touch the checkout's .meltano/meltano.db or output/.

The extractor is pointed at a per-test emulator through TAP_FULLSTORY_* environment variables (they take
precedence over meltano.yml), loaders at the session's services through TARGET_* variables. Every meltano call is
wrapped in a timeout.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import textwrap
import time
import typing as t
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytestmark = pytest.mark.meltano

ROOT = Path(__file__).resolve().parents[1]
MELTANO = Path(os.environ.get("MELTANO_BIN") or ROOT / ".venv-meltano" / "bin" / "meltano")
API_KEY = "test-key"
START, END = "2024-01-01T00:00:00Z", "2024-01-03T00:00:00Z"
LOADERS = ("target-duckdb", "target-postgres", "target-jsonl", "target-bigquery")
BASE_ENV = {
    "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
    "MELTANO_CLI_DISABLE_VERSION_CHECK": "true",
    "NO_COLOR": "1",
}
# Durations of each meltano call, printed at the end of the session (pytest -s or -rA shows them).
TIMINGS: list[tuple[str, float]] = []


def _clean_env() -> dict[str, str]:
    """The process environment without settings that would leak into Meltano's plugins."""
    drop = ("TAP_FULLSTORY", "TARGET_", "MELTANO_", "GOOGLE_APPLICATION_CREDENTIALS", "BIGQUERY_EMULATOR_HOST")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)} | BASE_ENV


def meltano(args: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 180,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    t0 = time.monotonic()
    try:
        proc = subprocess.run([str(MELTANO), *args], cwd=cwd, env={**_clean_env(), **(env or {})},
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = (exc.stderr or b"").decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        pytest.fail(f"meltano {' '.join(args)} timed out after {timeout} s\n{(out + err)[-4000:]}", pytrace=False)
    TIMINGS.append((" ".join(args), time.monotonic() - t0))
    if check and proc.returncode != 0:
        pytest.fail(f"meltano {' '.join(args)} exited {proc.returncode}\n{(proc.stdout + proc.stderr)[-6000:]}",
                    pytrace=False)
    return proc


@pytest.fixture(scope="session")
def installed() -> Path:
    """`meltano install` of the extractor and the installable loaders, once, in the repository's project."""
    if not MELTANO.exists():
        pytest.fail(f"{MELTANO} missing: run `make services-venvs` (it builds .venv-meltano)", pytrace=False)
    meltano(["install", "--plugin-type", "extractors", "tap-fullstory"], cwd=ROOT, timeout=600)
    meltano(["install", "--plugin-type", "loaders", *LOADERS], cwd=ROOT, timeout=900)
    return ROOT / ".meltano"


@pytest.fixture(scope="session", autouse=True)
def _report_timings():
    yield
    if TIMINGS:
        print("\nmeltano call timings:")
        for cmd, secs in TIMINGS:
            print(f"  {secs:6.1f} s  meltano {cmd}")


@dataclass
class Project:
    """A scratch copy of the Meltano project sharing the installed plugin venvs."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, timeout: float = 180, env: dict[str, str] | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        return meltano(list(args), cwd=self.root, env={**self.env, **(env or {})}, timeout=timeout, check=check)

    def state(self, state_id: str) -> dict:
        out = self.run("state", "get", state_id, timeout=60).stdout
        return json.loads(out.strip().splitlines()[-1])

    def point_at(self, emu, start: str = START, end: str = END) -> None:
        self.env.update({
            "TAP_FULLSTORY_API_URL": emu.base_url,
            "TAP_FULLSTORY_API_KEY": API_KEY,
            "TAP_FULLSTORY_START_DATE": start,
            "TAP_FULLSTORY_END_DATE": end,
            # poll_interval stays the dev environment's 0.05: Meltano 4.4.1 crashes on a decimal setting taken from
            # an environment variable (Decimal is not JSON serializable).
        })


@pytest.fixture
def project(tmp_path: Path, installed: Path) -> Project:
    root = tmp_path / "project"
    (root / ".meltano").mkdir(parents=True)
    (root / "output").mkdir()
    shutil.copy2(ROOT / "meltano.yml", root / "meltano.yml")
    shutil.copytree(ROOT / "plugins", root / "plugins")
    for kind in ("extractors", "loaders"):
        (root / ".meltano" / kind).symlink_to(installed / kind, target_is_directory=True)
    return Project(root)


def custom_var_counts(rows: list[dict]) -> Counter:
    """How many rows carry each custom var: keys of the emulator rows that the tap puts into CustomVars."""
    return Counter(k for r in rows for k in r if k.startswith(("user_", "evt_", "page_")) and r[k] is not None)


def pick_custom_var(rows: list[dict]) -> tuple[str, str, int]:
    """A string custom var, one of its values and how many rows have that value."""
    counts = Counter((k, v) for r in rows for k, v in r.items()
                     if k.startswith(("user_", "evt_", "page_")) and k.endswith("_str") and isinstance(v, str))
    assert counts, "the emulator organisation has no string custom vars"
    (key, value), n = counts.most_common(1)[0]
    return key, value, n


# --- DuckDB -------------------------------------------------------------------------------------------------------


def duck_query(db: Path, sql: str, *params) -> list[tuple]:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)  # closed at once: target-duckdb needs the write lock next run
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def test_duckdb_rows_custom_vars_state_and_rerun(project: Project, make_emulator) -> None:
    emu = make_emulator(start=START, days=2, events_per_hour=12, seed=21)
    project.point_at(emu)
    expected = emu.expected_rows(START, END)
    assert len(expected) > 100

    project.run("run", "tap-fullstory", "target-duckdb")
    db = project.root / "output" / "fullstory.duckdb"
    assert duck_query(db, "select count(*), count(distinct eventid) from events")[0] == (len(expected),
                                                                                         len(expected))
    # Typed columns, CustomVars as JSON.
    types = dict(duck_query(db, "select column_name, data_type from information_schema.columns "
                                "where table_name = 'events'"))
    assert types["eventstart"] == "TIMESTAMP" and types["customvars"] == "JSON"
    assert types["userid"] in ("HUGEINT", "BIGINT")
    # CustomVars queryable with DuckDB's JSON functions.
    key, value, n = pick_custom_var(expected)
    assert duck_query(db, "select count(*) from events where customvars ->> ? = ?", f"$.{key}", value)[0][0] == n
    assert duck_query(db, "select count(*) from events where json_extract_string(customvars, ?) = ?",
                      f'$."{key}"', value)[0][0] == n
    keys = dict(duck_query(db, "select k, count(*) from (select unnest(json_keys(customvars)) as k from events) "
                               "group by k"))
    assert keys == dict(custom_var_counts(expected))

    state = project.state("dev:tap-fullstory-to-target-duckdb")
    assert state["singer_state"]["bookmarks"]["events"]["replication_key_value"] == END

    # Second run: the state makes the tap export nothing; no row is added.
    operations = emu.stats()["operations"]
    second = project.run("run", "tap-fullstory", "target-duckdb")
    assert duck_query(db, "select count(*) from events")[0][0] == len(expected)
    assert emu.stats()["operations"] == operations, "the second run should not have created any export"
    assert "Nothing to export" in second.stderr + second.stdout
    assert project.state("dev:tap-fullstory-to-target-duckdb") == state


# --- PostgreSQL ---------------------------------------------------------------------------------------------------


def pg_env(postgres, database: str, schema: str) -> dict[str, str]:
    cfg = postgres.target_config(database)
    return {
        "TARGET_POSTGRES_HOST": str(cfg["host"]),
        "TARGET_POSTGRES_PORT": str(cfg["port"]),
        "TARGET_POSTGRES_USER": str(cfg["user"]),
        "TARGET_POSTGRES_PASSWORD": str(cfg["password"] or "x"),
        "TARGET_POSTGRES_DATABASE": database,
        "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": schema,
    }


def pg_query(url: str, sql: str, *params) -> list[tuple]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as con:
        return con.execute(sql, params or None).fetchall()


@pytest.fixture
def pg_database(postgres):
    url = postgres.create_database()
    name = url.rsplit("/", 1)[1]
    yield name, url
    postgres.drop_database(name)


def test_postgres_records_and_parquet_day_batches(project: Project, make_emulator, postgres, pg_database) -> None:
    db, url = pg_database
    emu = make_emulator(start=START, days=2, events_per_hour=12, seed=22)
    project.point_at(emu)
    expected = emu.expected_rows(START, END)
    key, value, n = pick_custom_var(expected)

    # RECORD messages: tap-fullstory -> target-postgres.
    project.run("run", "tap-fullstory", "target-postgres", env=pg_env(postgres, db, "fullstory"), timeout=240)
    assert pg_query(url, 'select count(*), count(distinct "EventId") from fullstory.events')[0] == (
        len(expected), len(expected))
    types = dict(pg_query(url, "select column_name, data_type from information_schema.columns "
                               "where table_schema = 'fullstory' and table_name = 'events'"))
    assert types["CustomVars"] == "jsonb"
    assert types["EventStart"].startswith("timestamp") and types["UserId"] == "bigint"
    assert pg_query(url, 'select count(*) from fullstory.events where "CustomVars" ->> %s = %s', key, value)[0][0] == n
    assert project.state("dev:tap-fullstory-to-target-postgres")["singer_state"]["bookmarks"]["events"][
        "replication_key_value"] == END

    # Parquet UTC-day BATCH files: tap-fullstory-parquet -> target-postgres (its own state ID, its own schema).
    run = project.run("run", "tap-fullstory-parquet", "target-postgres",
                      env=pg_env(postgres, db, "fullstory_parquet"), timeout=240)
    batches = sorted(p.name for p in (project.root / "output" / "batches").rglob("events-*.parquet"))
    assert len(batches) == 2, f"one Parquet file per UTC day expected, got {batches}"
    assert "batch manifests" in run.stdout + run.stderr
    assert pg_query(url, 'select count(*), count(distinct "EventId") from fullstory_parquet.events')[0] == (
        len(expected), len(expected))
    # Same rows in both schemas (Parquet timestamps and typed columns survive the trip).
    assert pg_query(url, 'select count(*) from fullstory.events r join fullstory_parquet.events b '
                         'using ("EventId") where r."EventStart" = b."EventStart" '
                         'and r."UserId" is not distinct from b."UserId"')[0][0] == len(expected)
    # CustomVars: the tap writes it as a Parquet JSON column, which target-postgres stores as a jsonb *string*
    # holding the JSON text (notes §5.3); `#>> '{}'` unwraps it, so the custom var is still queryable.
    cv_type = pg_query(url, 'select distinct jsonb_typeof("CustomVars") from fullstory_parquet.events')
    print("Parquet batch CustomVars jsonb_typeof:", cv_type)
    unwrap = '("CustomVars" #>> \'{}\')::jsonb' if cv_type == [("string",)] else '"CustomVars"'
    assert pg_query(url, f"select count(*) from fullstory_parquet.events where {unwrap} ->> %s = %s",
                    key, value)[0][0] == n
    assert project.state("dev:tap-fullstory-parquet-to-target-postgres")["singer_state"]["bookmarks"]["events"][
        "replication_key_value"] == END


# --- BigQuery (bqemulator) ----------------------------------------------------------------------------------------


BQ_CHECK = textwrap.dedent("""
    import json, sys
    from google.cloud import bigquery
    project, key, value = sys.argv[1:4]
    c = bigquery.Client(project=project)
    t = c.get_table(f"{project}.fullstory.events")
    out = {"types": {f.name: f.field_type for f in t.schema},
           "partitioning": t.time_partitioning.type_ if t.time_partitioning else None}
    q = lambda sql: list(c.query(sql).result())
    out["count"] = q("select count(*) n from fullstory.events")[0].n
    out["distinct"] = q("select count(distinct EventId) n from fullstory.events")[0].n
    out["value_rows"] = q(f"select count(*) n from fullstory.events where JSON_VALUE(CustomVars, '$.{key}') = '{value}'")[0].n
    out["days"] = [list(r.values()) for r in q(
        "select format_date('%Y-%m-%d', date(EventStart)) d, count(*) n from fullstory.events group by d order by d")]
    print(json.dumps(out))
""")


def test_bigquery_emulator(project: Project, make_emulator, bigquery) -> None:
    emu = make_emulator(start=START, days=1, events_per_hour=6, seed=23)
    end = "2024-01-02T00:00:00Z"
    project.point_at(emu, end=end)
    expected = emu.expected_rows(START, end)
    key, value, n = pick_custom_var(expected)
    env = {**bigquery["env"], "TARGET_BIGQUERY_PROJECT": bigquery["project"]}

    project.run("run", "tap-fullstory", "target-bigquery", env=env, timeout=300)
    check = subprocess.run([str(bigquery["python"]), "-c", BQ_CHECK, bigquery["project"], key, value],
                           env={**os.environ, **bigquery["env"]}, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stderr[-3000:]
    got = json.loads(check.stdout.strip().splitlines()[-1])
    assert got["count"] == got["distinct"] == len(expected)
    types = got["types"]
    assert types["EventStart"] == "TIMESTAMP" and types["UserId"] == "INTEGER"
    assert types["EventType"] == "STRING" and types["CustomVars"] == "JSON"
    assert got["partitioning"] == "DAY"
    assert got["value_rows"] == n
    assert got["days"] == [["2024-01-01", len(expected)]]
    assert project.state("dev:tap-fullstory-to-target-bigquery")["singer_state"]["bookmarks"]["events"][
        "replication_key_value"] == end


# --- JSONL --------------------------------------------------------------------------------------------------------


def test_jsonl(project: Project, make_emulator) -> None:
    emu = make_emulator(start=START, days=2, events_per_hour=6, seed=24)
    project.point_at(emu)
    expected = emu.expected_rows(START, END)
    project.run("run", "tap-fullstory", "target-jsonl")
    lines = (project.root / "output" / "events.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == len(expected)
    assert len({r["EventId"] for r in records}) == len(expected)
    assert Counter(k for r in records for k in r["CustomVars"]) == custom_var_counts(expected)
    assert project.state("dev:tap-fullstory-to-target-jsonl")["singer_state"]["bookmarks"]["events"][
        "replication_key_value"] == END


# --- the project file itself --------------------------------------------------------------------------------------


def test_project_definitions_match_the_tap(project: Project) -> None:
    """Capabilities and settings in meltano.yml agree with `tap-fullstory --about`; jobs and schedules resolve."""
    about = json.loads(subprocess.run([str(ROOT / ".meltano/extractors/tap-fullstory/venv/bin/tap-fullstory"),
                                       "--about", "--format=json"], capture_output=True, text=True,
                                      timeout=60, check=True).stdout)
    import yaml

    doc = yaml.safe_load((ROOT / "meltano.yml").read_text())
    tap = next(p for p in doc["plugins"]["extractors"] if p["name"] == "tap-fullstory")
    assert sorted(tap["capabilities"]) == sorted(about["capabilities"])
    declared = {s["name"].split(".")[0] for s in tap["settings"]}
    assert declared == set(about["settings"]["properties"])
    for s in tap["settings"]:
        assert s.get("kind") and s.get("label") and s.get("description"), s["name"]
    assert next(s for s in tap["settings"] if s["name"] == "api_key").get("sensitive") is True
    assert tap["settings_group_validation"] == [["api_key"]]
    jobs = project.run("job", "list", "--format=json", timeout=60).stdout
    assert "fullstory-to-bigquery" in jobs and "fullstory-to-duckdb" in jobs
    schedules = project.run("schedule", "list", "--format=json", timeout=60).stdout
    assert "@hourly" in schedules
    # target-redshift is not installable here (git-only), but its definition resolves offline from the lock file.
    redshift = json.loads(project.run("config", "print", "target-redshift", timeout=60).stdout)
    assert redshift["load_method"] == "upsert" and redshift["aws_redshift_copy_role_arn"].startswith("arn:aws:iam::")


# --- individuals (issue #14) ------------------------------------------------------------------------------------

MID = "2024-01-02T00:00:00Z"  # the first run stops here; the second continues to END
ONLY_INDIVIDUALS = {"TAP_FULLSTORY__SELECT": '["individuals.*"]'}


def individuals_after_two_runs(emu) -> dict[int, dict]:
    """What an upserting target must hold after [START, MID) then [MID, END): one row per individual active in
    [START, END), with its values as of the end of the last range it was active in."""
    table = {r["IndvId"]: r for r in emu.expected_individuals(START, MID)}
    table.update({r["IndvId"]: r for r in emu.expected_individuals(MID, END)})
    return table


def pick_user_var(rows) -> tuple[str, t.Any, int]:
    counts = Counter((k, v) for r in rows for k, v in r.items() if k.startswith("user_") and isinstance(v, str))
    (key, value), n = counts.most_common(1)[0]
    return key, value, n


def test_duckdb_individuals_upsert_rerun_and_join(project: Project, make_emulator) -> None:
    emu = make_emulator(start=START, days=2, events_per_hour=12, seed=25)
    db = project.root / "output" / "fullstory.duckdb"
    state_id = "dev:tap-fullstory-to-target-duckdb"

    # 1. Individuals only (Meltano's select, overridden per run), up to MID.
    project.point_at(emu, end=MID)
    project.run("run", "tap-fullstory", "target-duckdb", env=ONLY_INDIVIDUALS)
    first = emu.expected_individuals(START, MID)
    assert duck_query(db, "select count(*), count(distinct indvid) from individuals")[0] == (len(first), len(first))
    assert duck_query(db, "select count(*) from information_schema.tables where table_name = 'events'")[0][0] == 0
    types = dict(duck_query(db, "select column_name, data_type from information_schema.columns "
                                "where table_name = 'individuals'"))
    assert types["indvid"] in ("BIGINT", "HUGEINT") and types["numevents"] in ("BIGINT", "HUGEINT")
    assert types["lasteventstart"] == "TIMESTAMP" and types["totalsec"] == "DOUBLE"
    assert types["customvars"] == "JSON" and types["uid"] == "VARCHAR"
    key, value, n = pick_user_var(first)
    assert duck_query(db, "select count(*) from individuals where customvars ->> ? = ?", f"$.{key}", value)[0][0] == n

    # 2. A rerun adds nothing and exports nothing.
    operations = emu.stats()["operations"]
    project.run("run", "tap-fullstory", "target-duckdb", env=ONLY_INDIVIDUALS)
    assert duck_query(db, "select count(*) from individuals")[0][0] == len(first)
    assert emu.stats()["operations"] == operations

    # 3. The next range: individuals active again are updated in place, new ones added, none duplicated.
    project.point_at(emu, end=END)
    project.run("run", "tap-fullstory", "target-duckdb", env=ONLY_INDIVIDUALS)
    table = individuals_after_two_runs(emu)
    got = {row[0]: row[1:] for row in duck_query(
        db, "select indvid, numevents, numsessions, epoch_ms(lasteventstart), strftime(exportend, '%Y-%m-%d') "
        "from individuals")}
    assert len(got) == len(table) > len(first)
    assert duck_query(db, "select count(*) from individuals")[0][0] == len(table)
    for indv, row in table.items():
        stamp = dt.datetime.fromisoformat(row["LastEventStart"].replace("Z", "+00:00"))
        assert got[indv][:3] == (row["NumEvents"], row["NumSessions"], round(stamp.timestamp() * 1000)), indv
    moved = [i for i in table if i in {r["IndvId"] for r in first} and got[i][3] == "2024-01-03"]
    assert moved, "no individual of the first run was updated by the second"

    # 4. Both streams (the project's select): events load from START; the README's join works.
    project.run("run", "tap-fullstory", "target-duckdb")
    joined = dict(duck_query(db, """
        select i.indvid, count(*) from events e join individuals i using (indvid) group by 1"""))
    events_per_individual = Counter(e["IndvId"] for e in emu.expected_rows(START, END))
    assert joined == dict(events_per_individual)
    assert all(joined[i] == table[i]["NumEvents"] for i in table)  # all of the org's events are loaded
    bookmarks = project.state(state_id)["singer_state"]["bookmarks"]
    assert {k: v["replication_key_value"] for k, v in bookmarks.items()} == {"events": END, "individuals": END}


def test_postgres_individuals_records_and_batch(project: Project, make_emulator, postgres, pg_database) -> None:
    db, url = pg_database
    emu = make_emulator(start=START, days=2, events_per_hour=12, seed=26)
    env = {**pg_env(postgres, db, "fullstory"), **ONLY_INDIVIDUALS}
    project.point_at(emu, end=MID)
    project.run("run", "tap-fullstory", "target-postgres", env=env, timeout=240)
    project.point_at(emu, end=END)
    project.run("run", "tap-fullstory", "target-postgres", env=env, timeout=240)
    project.run("run", "tap-fullstory", "target-postgres", env=env, timeout=240)  # nothing new
    table = individuals_after_two_runs(emu)
    assert pg_query(url, 'select count(*), count(distinct "IndvId") from fullstory.individuals')[0] == (
        len(table), len(table))
    types = dict(pg_query(url, "select column_name, data_type from information_schema.columns "
                               "where table_schema = 'fullstory' and table_name = 'individuals'"))
    assert types["IndvId"] == "bigint" and types["NumEvents"] == "bigint" and types["CustomVars"] == "jsonb"
    assert types["LastEventStart"].startswith("timestamp") and types["TotalSec"] == "numeric"
    got = dict(pg_query(url, 'select "IndvId", "NumEvents" from fullstory.individuals'))
    assert got == {i: r["NumEvents"] for i, r in table.items()}
    key, value, n = pick_user_var(table.values())
    assert pg_query(url, 'select count(*) from fullstory.individuals where "CustomVars" ->> %s = %s',
                    key, value)[0][0] == n

    # BATCH: one Parquet file for the run (not per day), loaded by target-postgres.
    project.run("run", "tap-fullstory-parquet", "target-postgres",
                env={**pg_env(postgres, db, "fullstory_parquet"), **ONLY_INDIVIDUALS}, timeout=240)
    files = sorted(p.name for p in (project.root / "output" / "batches").rglob("*.parquet"))
    assert len(files) == 1 and files[0].startswith("individuals-2024-01-01-"), files
    whole = emu.expected_individuals(START, END)
    assert pg_query(url, 'select count(*) from fullstory_parquet.individuals')[0][0] == len(whole)
    assert dict(pg_query(url, 'select "IndvId", "NumEvents" from fullstory_parquet.individuals')) == {
        r["IndvId"]: r["NumEvents"] for r in whole}
