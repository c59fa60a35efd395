"""The dbt project (transform/, issue #21) end to end, run by Meltano, on DuckDB and PostgreSQL.

Each test loads an emulator organisation with the project's jobs (`tap-fullstory target-duckdb dbt-duckdb:run`,
`tap-fullstory-jsonl target-postgres dbt-postgres:run`) in a scratch copy of the Meltano project, runs dbt's own
tests (`dbt-<warehouse>:test`), and compares the models' numbers with tests/dbt_expected.py, an independent
computation in Python over the same export. The dbt utilities are installed once per session with `meltano
install` (their venvs come from the package registry, pinned in plugins/utilities/*.lock and meltano.yml).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest

from tests import dbt_expected
from tests.test_meltano import (  # noqa: F401  (fixtures used by name)
    END,
    START,
    Project,
    duck_query,
    installed,
    meltano,
    pg_database,
    pg_env,
    pg_query,
    project,
)

pytestmark = pytest.mark.meltano

ROOT = Path(__file__).resolve().parents[1]
UTILITIES = ("dbt-duckdb", "dbt-postgres")
MODELS = ("stg_fs_events", "stg_fs_individuals", "fs_page_views", "fs_sessions", "fs_users", "fs_frustrations",
          "fs_custom_events", "fs_failed_requests")
KEYS = {"stg_fs_events": "event_id", "stg_fs_individuals": "indv_id", "fs_page_views": "page_key",
        "fs_sessions": "session_key", "fs_users": "indv_id", "fs_frustrations": "frustration_id",
        "fs_custom_events": "event_id", "fs_failed_requests": "event_id"}


@pytest.fixture(scope="session")
def dbt_installed(installed: Path) -> Path:  # noqa: F811  (the imported fixture)
    """`meltano install` of the two dbt utilities, once, in the repository's project."""
    meltano(["install", "--plugin-type", "utilities", *UTILITIES], cwd=ROOT, timeout=900)
    return installed


@pytest.fixture
def dbt_project(project: Project, dbt_installed: Path) -> Project:  # noqa: F811
    """test_meltano's scratch project (meltano.yml, plugins/, own state) plus transform/ and the dbt utilities."""
    shutil.copytree(ROOT / "transform", project.root / "transform",
                    ignore=shutil.ignore_patterns("target*", "logs", "dbt_packages", ".user.yml"))
    (project.root / ".meltano" / "utilities").symlink_to(dbt_installed / "utilities", target_is_directory=True)
    project.env.update({"DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "FULLSTORY_ORG_ID": "o-TEST-na1"})
    return project


def dbt(scratch: Project, utility: str, *args: str, env: dict[str, str] | None = None) -> str:
    """The utility's own dbt, called directly (for options such as --vars and --full-refresh)."""
    exe = scratch.root / ".meltano" / "utilities" / utility / "venv" / "bin" / "dbt"
    warehouse = utility.split("-", 1)[1]
    cmd = [str(exe), *args, "--project-dir", str(scratch.root / "transform"),
           "--profiles-dir", str(scratch.root / "transform" / "profiles" / warehouse)]
    proc = subprocess.run(cmd, cwd=scratch.root, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **scratch.env, **(env or {})})
    if proc.returncode != 0:
        pytest.fail(f"dbt {' '.join(args)} exited {proc.returncode}\n{(proc.stdout + proc.stderr)[-6000:]}",
                    pytrace=False)
    return proc.stdout


Query = t.Callable[[str], list[tuple]]


def model_figures(query: Query) -> dict[str, t.Any]:
    """The same figures as dbt_expected.summary, read from the models (schema analytics)."""
    a = "analytics."
    sessions = query(f"select session_key, duration_ms, active_ms, pages, rage_clicks from {a}fs_sessions")
    per_day = query(f"select cast(session_date as varchar), count(*), count(distinct indv_id) "
                    f"from {a}fs_sessions group by 1 order by 1")
    kinds = dict(query(f"select kind, count(*) from {a}fs_frustrations group by kind"))
    return {
        "events": int(query(f"select sum(events) from {a}fs_page_views")[0][0]),
        "sessions_per_day": {d: int(n) for d, n, _ in per_day},
        "users_per_day": {d: int(u) for d, _, u in per_day},
        "duration_ms": {k: int(d) for k, d, _, _, _ in sessions},
        "active_ms": {k: int(a_) for k, _, a_, _, _ in sessions},
        "pages": {k: int(p) for k, _, _, p, _ in sessions},
        "rage_clicks": {k: int(r) for k, _, _, _, r in sessions},
        "rage_clicks_total": int(kinds.get("rage", 0)),
        "dead_clicks": int(kinds.get("dead", 0)),
        "error_clicks": int(kinds.get("error", 0)),
        "suspicious": int(kinds.get("suspicious", 0)),
        "failed_requests": int(query(f"select count(*) from {a}fs_failed_requests")[0][0]),
        "custom_events": int(query(f"select count(*) from {a}fs_custom_events")[0][0]),
        "users": int(query(f"select count(*) from {a}fs_users")[0][0]),
        "sessions_per_user": {int(i): int(n) for i, n in query(f"select indv_id, sessions from {a}fs_users")},
    }


def assert_models_match(query: Query, rows: list[dict]) -> None:
    expected = dbt_expected.summary(rows)
    got = model_figures(query)
    # The organisation must exercise what is compared: rage bursts (and that summing the counter differs),
    # multi-page sessions, failed requests.
    assert expected["rage_clicks_total"] > 0 and expected["frustrated_sum"] > expected["rage_clicks_total"]
    assert max(expected["pages"].values()) > 1 and expected["failed_requests"] > 0
    for name, value in got.items():
        assert value == expected[name], f"{name}: models {str(value)[:300]} != python {str(expected[name])[:300]}"


def row_counts(query: Query) -> dict[str, int]:
    return {m: int(query(f"select count(*) from analytics.{m}")[0][0]) for m in MODELS}


def snapshot(query: Query) -> dict[str, list[tuple]]:
    """Every model's rows, ordered by key, values as text (for exact comparisons between two builds)."""
    return {m: sorted(tuple(str(v) for v in r) for r in query(f"select * from analytics.{m} order by {KEYS[m]}"))
            for m in MODELS}


# --- DuckDB -------------------------------------------------------------------------------------------------------


def test_duckdb_job_models_dbt_tests_and_rerun(dbt_project: Project, make_emulator) -> None:
    emu = make_emulator(start=START, days=2, events_per_hour=40, seed=31)
    dbt_project.point_at(emu)
    rows = emu.expected_rows(START, END)
    db = dbt_project.root / "output" / "fullstory.duckdb"

    dbt_project.run("run", "fullstory-to-duckdb", timeout=300)        # tap-fullstory target-duckdb dbt-duckdb:run

    def query(sql: str) -> list[tuple]:
        return duck_query(db, sql)

    assert_models_match(query, rows)
    test = dbt_project.run("invoke", "dbt-duckdb:test", timeout=300)  # fails the test when a dbt test fails
    assert " PASS=" in test.stdout + test.stderr and "ERROR=0" in test.stdout + test.stderr
    replay = query("select replay_url, user_id, session_id from analytics.fs_sessions limit 1")[0]
    assert replay[0] == f"https://app.fullstory.com/ui/o-TEST-na1/session/{replay[1]}:{replay[2]}"

    # The second run exports nothing and rebuilds no more rows: every model keeps its row count.
    before = row_counts(query)
    dbt_project.run("run", "fullstory-to-duckdb", timeout=300)
    assert row_counts(query) == before
    assert before["stg_fs_events"] == len(rows)


def duck_write(scratch: Project, sql: str) -> None:
    """Change the loaded tables with the DuckDB that target-duckdb and dbt-duckdb use (1.2.2), not this venv's."""
    py = scratch.root / ".meltano" / "utilities" / "dbt-duckdb" / "venv" / "bin" / "python"
    db = scratch.root / "output" / "fullstory.duckdb"
    subprocess.run([str(py), "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); c.execute(sys.argv[2]); "
                    "c.close()", str(db), sql], check=True, timeout=120)


def test_duckdb_incremental_equals_full_refresh(dbt_project: Project, make_emulator) -> None:
    """Events arrive in three loads, each cut inside a session (as a session spanning midnight is cut by a daily
    load), and 20 minutes of events arrive one load late; each load is modelled incrementally with a 1 h lookback.
    The result equals a full rebuild, row for row, and the Python computation."""
    emu = make_emulator(start=START, days=2, events_per_hour=40, seed=32)
    dbt_project.point_at(emu)
    dbt_project.run("run", "tap-fullstory", "target-duckdb", timeout=300)
    db = dbt_project.root / "output" / "fullstory.duckdb"

    def query(sql: str) -> list[tuple]:
        return duck_query(db, sql)

    # Cut each day's load in the middle of its longest session; part of the evening before cut 2 arrives late.
    def middle_of_longest_session(day: str) -> str:
        return query("select strftime(min(eventstart) + (max(eventstart) - min(eventstart)) / 2, '%Y-%m-%d %H:%M:%S') "
                     "from main.events group by userid, sessionid having min(eventstart)::date = ?::date "
                     "order by max(eventstart) - min(eventstart) desc limit 1".replace("?", f"'{day}'"))[0][0]

    cut1, cut2 = middle_of_longest_session("2024-01-01"), middle_of_longest_session("2024-01-02")
    late = query(f"select strftime(timestamp '{cut2}' - interval 40 minute, '%Y-%m-%d %H:%M:%S')")[0][0]
    split, first = query(f"select count(*), min(s) from (select min(eventstart) as s from main.events "
                         f"group by userid, sessionid having min(eventstart) < timestamp '{cut1}' "
                         f"and max(eventstart) >= timestamp '{cut1}')")[0]
    assert split > 0, "no session spans the cut: the test would not exercise the lookback"
    newest = query(f"select max(eventstart) from main.events where eventstart < timestamp '{cut1}'")[0][0]
    duck_write(dbt_project, "create table main.all_events as select * from main.events; "
                            f"delete from main.events where eventstart >= timestamp '{cut1}'")
    loads = [f"eventstart >= timestamp '{cut1}' and eventstart < timestamp '{cut2}' "
             f"and not (eventstart >= timestamp '{late}' and eventstart < timestamp '{cut2}' - interval 20 minute)",
             f"eventstart >= timestamp '{cut2}' or "
             f"(eventstart >= timestamp '{late}' and eventstart < timestamp '{cut2}' - interval 20 minute)"]
    # Load 2 re-models the session cut by load 1 with a lookback shorter than the part of it already modelled (the
    # newest modelled event minus the session's start), but more than half of it: the session has events before
    # the cutoff, which must be read back (history goes back two lookbacks). Load 3 uses 1 h: the late 20 minutes
    # are within it.
    dbt(dbt_project, "dbt-duckdb", "run")
    hours = 0.75 * (newest - first).total_seconds() / 3600
    for where, lookback in zip(loads, (hours, 1), strict=True):
        duck_write(dbt_project, f"insert into main.events select * from main.all_events where {where}")
        dbt(dbt_project, "dbt-duckdb", "run", "--vars", f"{{fullstory_lookback_hours: {lookback}}}")
    incremental = snapshot(query)
    assert_models_match(query, emu.expected_rows(START, END))

    dbt(dbt_project, "dbt-duckdb", "run", "--full-refresh")
    full = snapshot(query)
    for model in MODELS:
        assert incremental[model] == full[model], f"{model}: incremental build differs from a full refresh"


def test_duckdb_without_individuals(dbt_project: Project, make_emulator) -> None:
    """Events only (the individuals stream deselected): the models build, users have no fs_* figures."""
    emu = make_emulator(start=START, days=1, events_per_hour=20, seed=33)
    dbt_project.point_at(emu, end="2024-01-02T00:00:00Z")
    dbt_project.run("run", "fullstory-to-duckdb", timeout=300, env={"TAP_FULLSTORY__SELECT": '["events.*"]'})
    db = dbt_project.root / "output" / "fullstory.duckdb"
    assert duck_query(db, "select count(*) from information_schema.tables where table_name = 'individuals'") == [(0,)]
    users = duck_query(db, "select count(*), count(fs_num_sessions) from analytics.fs_users")[0]
    assert users[0] > 0 and users[1] == 0


# --- PostgreSQL ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("job", ["fullstory-to-postgres", "fullstory-to-postgres-parquet"])
def test_postgres_job_models_dbt_tests_and_rerun(dbt_project: Project, make_emulator, postgres, job: str,
                                                 pg_database) -> None:  # noqa: F811
    """JSONL day batches (CustomVars a jsonb object) and Parquet day batches (a jsonb string holding the JSON text,
    which the PostgreSQL CustomVars macro unwraps)."""
    db, url = pg_database
    emu = make_emulator(start=START, days=2, events_per_hour=40, seed=34)
    dbt_project.point_at(emu)
    rows = emu.expected_rows(START, END)
    env = {**pg_env(postgres, db, "fullstory"), "DBT_POSTGRES_HOST": postgres.host,
           "DBT_POSTGRES_PORT": str(postgres.port), "DBT_POSTGRES_DBNAME": db}
    dbt_project.env.update(env)

    dbt_project.run("run", job, timeout=300)  # day batches, then dbt-postgres:run

    def query(sql: str) -> list[tuple]:
        return pg_query(url, sql)

    assert_models_match(query, rows)
    test = dbt_project.run("invoke", "dbt-postgres:test", timeout=300)
    assert " PASS=" in test.stdout + test.stderr and "ERROR=0" in test.stdout + test.stderr
    # User vars come from CustomVars (jsonb) through the PostgreSQL macro.
    plans = query("select count(*) from analytics.fs_users where user_plan_str is not null")[0][0]
    assert plans == len({r["IndvId"] for r in rows if "user_plan_str" in r})

    before = row_counts(query)
    dbt_project.run("run", job, timeout=300)
    assert row_counts(query) == before
    assert before["stg_fs_events"] == len(rows)


# --- make demo ------------------------------------------------------------------------------------------------------


def test_demo_twice_adds_nothing_and_keeps_model_counts(dbt_project: Project) -> None:
    """scripts/demo.py (what `make demo` runs) in a scratch copy of the project: the first run builds the models and
    prints their summary; the second adds 0 events and leaves every model's row count unchanged."""
    (dbt_project.root / "scripts").mkdir()
    shutil.copy2(ROOT / "scripts" / "demo.py", dbt_project.root / "scripts" / "demo.py")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAP_FULLSTORY", "TARGET_", "DBT_", "MELTANO_"))}
    env.update({"MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false", "MELTANO_CLI_DISABLE_VERSION_CHECK": "true"})

    def demo() -> str:
        proc = subprocess.run([sys.executable, "scripts/demo.py", "--meltano", str(ROOT / ".venv-meltano/bin/meltano")],
                              cwd=dbt_project.root, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
        return proc.stdout

    first = demo()
    for title in ("Sessions and users per UTC day (fs_sessions)", "Top pages by time on page (fs_page_views)",
                  "Frustration hot spots (fs_frustrations)"):
        assert title in first
    assert "rows added by this run: {'fs_page_views'" in first
    second = demo()
    assert "(0 added by this run" in second
    assert "row counts unchanged by this run" in second

    def model_counts(out: str) -> str:
        line = next(x for x in out.splitlines() if x.startswith("[demo] models"))
        return line.split(": ", 1)[1].split(";")[0]  # "fs_page_views 105, fs_sessions 80, ..."

    assert model_counts(second) == model_counts(first)


# --- make bench-transform -------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_bench_transform_runs_at_a_tiny_size(tmp_path: Path, dbt_installed: Path) -> None:
    """bench/transform.py end to end on a tiny day, so the harness cannot rot (no timing is asserted)."""
    import json

    out = tmp_path / "transform.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "transform.py"), "--events", "2400",
                           "--output", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    doc = json.loads(out.read_text())
    assert doc["status"] == "ok" and doc["load"]["rows_loaded"] == doc["rows"] > 0
    assert doc["full"]["status"] == doc["incremental"]["status"] == "ok"
    assert "full transform / load" in proc.stdout
