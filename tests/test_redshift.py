"""`meltano run tap-fullstory target-redshift` into the Redshift stand-in (issue #19).

The stock TicketSwap target-redshift 0.3.2 runs unchanged from .venv-redshift (`make redshift-venv`): the
scratch project's loader executable is that venv's `target-redshift`, so nothing is installed from the
Hub's git-only pip_url. It stages gzip CSV in moto S3 and COPYs/MERGEs through the stand-in
(standins/redshift/) into PostgreSQL 15; the tests read the result from PostgreSQL directly and through the
stand-in (SUPER navigation).
"""

from __future__ import annotations

import datetime as dt

import pytest
import yaml

import tests.test_meltano as tm
import tests.test_redshift_standin as rs
from standins.redshift import launch
from tests.test_meltano import END, MID, START, Project, individuals_after_two_runs, pick_custom_var

installed, project = tm.installed, tm.project
redshift, rs_db = rs.redshift, rs.rs_db

pytestmark = [pytest.mark.services, pytest.mark.meltano]

RUN = ("run", "--no-install")
TARGET = launch.VENV / "bin" / "target-redshift"


@pytest.fixture
def rs_project(project: Project, redshift, rs_db) -> Project:
    """test_meltano's scratch project, its target-redshift the one in .venv-redshift, pointed at the stand-in."""
    if not TARGET.exists():
        pytest.fail(f"{TARGET} missing: run `make redshift-venv`", pytrace=False)
    doc = yaml.safe_load((project.root / "meltano.yml").read_text())
    loader = next(p for p in doc["plugins"]["loaders"] if p["name"] == "target-redshift")
    loader["executable"] = str(TARGET)  # absolute: Meltano runs it instead of a plugin venv's target-redshift
    (project.root / "meltano.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    project.env.update(redshift.target_env(rs_db, rs.BUCKET))
    return project


def pg(postgres, db: str, sql: str, *params) -> list[tuple]:
    with rs.plain(postgres, db) as con:
        return con.execute(sql, params or None).fetchall()


def test_records_two_windows_individuals_rerun(rs_project: Project, make_emulator, postgres,
                                               redshift, rs_db) -> None:
    emu = make_emulator(start=START, days=2, events_per_hour=12, seed=27)
    # Two windows: [START, MID) then [MID, END). Individuals active in both are updated in place.
    rs_project.point_at(emu, end=MID)
    rs_project.run(*RUN, "tap-fullstory", "target-redshift", timeout=300)
    first = {r["IndvId"] for r in emu.expected_individuals(START, MID)}
    rs_project.point_at(emu, end=END)
    rs_project.run(*RUN, "tap-fullstory", "target-redshift", timeout=300)

    expected = emu.expected_rows(START, END)
    count = "select count(*), count(distinct eventid) from fullstory.events"
    assert pg(postgres, rs_db, count)[0] == (len(expected), len(expected))
    types = dict(pg(postgres, rs_db, "select column_name, data_type from information_schema.columns "
                                     "where table_schema = 'fullstory' and table_name = 'events'"))
    assert types["eventid"] == "character varying" and types["userid"] == "bigint"
    assert types["eventstart"] == "timestamp without time zone" and types["customvars"] == "jsonb"
    assert types["eventcumulativelayoutshift"] == "double precision"
    with rs.through(redshift, rs_db) as con:  # CustomVars is SUPER: Redshift's navigation
        key, value, n = pick_custom_var(expected)
        con.execute("set enable_case_sensitive_identifier to true")  # custom var names are mixed case
        got = con.execute(f'select count(*) from fullstory.events where customvars."{key}"::varchar = %s',
                          (str(value),)).fetchone()[0]
        assert got == n

    table = individuals_after_two_runs(emu)
    rows = {r[0]: r[1:] for r in pg(postgres, rs_db, "select indvid, numevents, lasteventstart, "
                                                     "exportend::date::text from fullstory.individuals")}
    assert len(rows) == len(table) > len(first)
    for indv, want in table.items():
        stamp = dt.datetime.fromisoformat(want["LastEventStart"].replace("Z", "+00:00")).replace(tzinfo=None)
        assert rows[indv][:2] == (want["NumEvents"], stamp), indv
    assert [i for i in table if i in first and rows[i][2] == "2024-01-03"], "no individual updated in place"

    # A full refresh re-exports every window: MERGE on EventId updates, it adds no row.
    rs_project.run(*RUN, "--full-refresh", "tap-fullstory", "target-redshift", timeout=300)
    assert pg(postgres, rs_db, count)[0] == (len(expected), len(expected))
    assert pg(postgres, rs_db, "select count(*) from fullstory.individuals")[0][0] == len(table)
    state = rs_project.state("dev:tap-fullstory-to-target-redshift")
    assert state["singer_state"]["bookmarks"]["events"]["replication_key_value"] == END


LONG = "é" * 40_000  # 80,000 bytes: more than Redshift's VARCHAR limit (65,535) and the target's 10,000
ROW = ('{"EventStart":"2024-01-01T00:00:00.000Z","EventType":"click","UserId":4242,"SessionId":1,'
       '"PageId":1,"EventTargetText":"bad\\u0000text","user_note_str":"a\\u0000b","PageUrl":"https://x/'
       + LONG + '"}').encode()


def test_nul_and_text_longer_than_varchar(rs_project: Project, make_emulator, postgres, rs_db) -> None:
    emu = make_emulator(start=START, days=1, events_per_hour=12, seed=28)
    emu.add_fault("download", "raw_row", nth=1, row=1, raw=ROW)
    end = "2024-01-02T00:00:00Z"
    rs_project.point_at(emu, end=end)
    run = rs_project.run(*RUN, "tap-fullstory", "target-redshift", timeout=300,
                         env={"TAP_FULLSTORY__SELECT": '["events.*"]'})
    assert "held NUL characters (U+0000): removed" in run.stderr + run.stdout  # nul_characters: strip
    expected = len(emu.expected_rows(START, end)) + 1
    assert pg(postgres, rs_db, "select count(*) from fullstory.events")[0][0] == expected
    text, note, url_bytes, url = pg(postgres, rs_db, "select eventtargettext, customvars ->> 'user_note_str', "
                                                     "octet_length(pageurl), pageurl from fullstory.events "
                                                     "where userid = 4242")[0]
    assert (text, note) == ("badtext", "ab")
    # VARCHAR(10000) (the target's default_varchar_length) and its COPY option TRUNCATECOLUMNS: cut to
    # 10,000 bytes, at a character boundary; the row loads and the schedule moves on.
    assert url_bytes == 10_000 and ("https://x/" + LONG).startswith(url)


def test_wrong_password_one_clear_line(rs_project: Project, make_emulator) -> None:
    emu = make_emulator(start=START, days=1, events_per_hour=2, seed=29)
    rs_project.point_at(emu, end="2024-01-02T00:00:00Z")
    run = rs_project.run(*RUN, "tap-fullstory", "target-redshift", timeout=300, check=False,
                         env={"TARGET_REDSHIFT_PASSWORD": "not-the-password"})
    out = run.stdout + run.stderr
    assert run.returncode != 0
    lines = [line for line in out.splitlines() if 'password authentication failed for user "loader"' in line]
    assert len(lines) == 1, out[-3000:]
    assert "not-the-password" not in out


def test_job_jsonl_day_batches_load_what_records_load(rs_project: Project, make_emulator, postgres,
                                                      rs_db) -> None:
    """The job fullstory-to-redshift (JSONL day batches, the faster mode) loads the same rows, value for
    value, as RECORD mode; its rerun over the same days adds none."""
    emu = make_emulator(start=START, days=2, events_per_hour=12, seed=30)
    rs_project.point_at(emu)
    only_events = {"TAP_FULLSTORY__SELECT": '["events.*"]', "TAP_FULLSTORY_JSONL__SELECT": '["events.*"]'}
    rs_project.run(*RUN, "tap-fullstory", "target-redshift", env=only_events, timeout=300)
    batches = {**only_events, "TARGET_REDSHIFT_DEFAULT_TARGET_SCHEMA": "fullstory_jsonl"}
    run = rs_project.run(*RUN, "fullstory-to-redshift", env=batches, timeout=300)
    assert "batch manifests" in run.stdout + run.stderr  # BATCH messages, not RECORD
    expected = len(emu.expected_rows(START, END))
    diff = ("select count(*) from (select * from fullstory.events except "
            "select * from fullstory_jsonl.events) d")
    assert pg(postgres, rs_db, "select count(*), count(distinct eventid) from fullstory_jsonl.events")[0] == (
        expected, expected)
    assert pg(postgres, rs_db, diff)[0][0] == 0
    assert pg(postgres, rs_db, diff.replace("fullstory.", "x.").replace("fullstory_jsonl.", "fullstory.")
              .replace("x.", "fullstory_jsonl."))[0][0] == 0
    rs_project.run(*RUN, "--full-refresh", "fullstory-to-redshift", env=batches, timeout=300)
    assert pg(postgres, rs_db, "select count(*) from fullstory_jsonl.events")[0][0] == expected
