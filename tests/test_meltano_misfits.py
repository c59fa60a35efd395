"""Values that do not fit their column (issue #20, docs/misfits.md) end to end through Meltano, with
`meltano.yml` as shipped (both streams selected, target-postgres with `use_copy: true` and
`validate_records: false`): the Postgres job and the RECORD pairing load an export whose every
5th row has misfit values (the emulator's `misfit_values` fault: "yesterday" in a timestamp, "abc"
and 1.5 in integer columns, "" for an individual's creation time, ...). The run succeeds, every
row lands once, the typed columns are null where the value did not fit, and the originals are
queryable in CustomVars under the field's name.

Why these settings need the tap's guarantee: without it, COPY stops on the first such value
(`invalid input syntax for type bigint: "abc"`), and with validation on (the target's default)
the run stops instead; either way every rerun of that window stops again.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tap_fullstory.testing.data import with_misfits
from tests import test_meltano, test_redshift, test_redshift_standin
from tests.test_meltano import BQ_CHECK, END, START, Project, duck_query, pg_env, pg_query

installed, project, pg_database = (test_meltano.installed, test_meltano.project,
                                   test_meltano.pg_database)
redshift, rs_db = test_redshift_standin.redshift, test_redshift_standin.rs_db
rs_project = test_redshift.rs_project

pytestmark = pytest.mark.meltano
EVERY = 5


def _emulator(make_emulator):
    emu = make_emulator(start=START, days=2, events_per_hour=12, seed=41)
    emu.add_fault("download", "misfit_values", times=10**6, every=EVERY)  # events and individuals
    return emu


def _served(rows: list[dict]) -> list[dict]:
    """An export's rows as the fault serves them (each 6 h window is its own export)."""
    return [with_misfits(r, i) if i % EVERY == 0 else r for i, r in enumerate(rows, 1)]


def _window_rows(emu) -> list[dict]:
    rows: list[dict] = []
    for hour in range(0, 48, 6):
        start = f"2024-01-{1 + hour // 24:02d}T{hour % 24:02d}:00:00Z"
        end = f"2024-01-{1 + (hour + 6) // 24:02d}T{(hour + 6) % 24:02d}:00:00Z"
        rows += _served(emu.expected_rows(start, end))
    return rows


# The job fullstory-to-postgres is `tap-fullstory-jsonl target-postgres dbt-postgres:run`: its load
# (the dbt step is tests/test_dbt.py's), and the RECORD pairing.
@pytest.mark.parametrize("job", [("run", "tap-fullstory-jsonl", "target-postgres"),
                                 ("run", "tap-fullstory", "target-postgres")],
                         ids=["job-jsonl-batches", "record"])
def test_postgres_loads_misfits_once_with_the_originals_queryable(
        project: Project, make_emulator, postgres, pg_database, job) -> None:
    db, url = pg_database
    emu = _emulator(make_emulator)
    project.point_at(emu)
    run = project.run(*job, env=pg_env(postgres, db, "fullstory"), timeout=300)
    out = run.stdout + run.stderr
    served = _window_rows(emu)
    # every row once
    count, distinct = pg_query(url, 'select count(*), count(distinct "EventId") from fullstory.events')[0]
    assert count == distinct == len(served)
    # the typed columns hold no misfit; the originals are in CustomVars under the field's name
    sent = {("PageNumErrors", 1.5), ("PageDuration", "abc"), ("UserCreated", "yesterday")}
    for field, value in sent:
        n_sent = sum(1 for r in served if r.get(field) == value and type(r.get(field)) is type(value))
        assert n_sent > 0, field
        got = pg_query(url, f'select count(*) from fullstory.events where "{field}" is null '
                            f'and "CustomVars" -> %s = %s::jsonb', field, f'{value!r}'.replace("'", '"'))
        assert got[0][0] == n_sent, field
    assert pg_query(url, 'select count(*) from fullstory.events where "CustomVars" ? %s',
                    "PageNumErrors")[0][0] == sum(1 for r in served if r.get("PageNumErrors") == 1.5)
    # individuals: one row each; a creation time served as "" is null (nothing to keep)
    people = emu.expected_individuals(START, END)
    assert pg_query(url, 'select count(*), count(distinct "IndvId") from fullstory.individuals'
                    )[0] == (len(people), len(people))
    empty = [r["IndvId"] for r in _served(people) if r.get("Created") == ""]
    assert empty, "the fault served no individual without a creation time"
    assert pg_query(url, 'select count(*) from fullstory.individuals where "Created" is null '
                         'and not "CustomVars" ? %s and "IndvId" = any(%s)', "Created", empty
                    )[0][0] == len(empty)
    assert "did not fit their column's type" in out
    assert "COPY" in out  # use_copy as shipped


def test_duckdb_loads_misfits_with_its_default_no_validation(project: Project, make_emulator
                                                             ) -> None:
    """target-duckdb never validates by default (validate_records: false); it imports CSV into
    typed columns, which without the rule stops on "abc" in an integer column."""
    emu = _emulator(make_emulator)
    project.point_at(emu)
    project.run("run", "tap-fullstory", "target-duckdb", timeout=300)
    db = project.root / "output" / "fullstory.duckdb"
    served = _window_rows(emu)
    assert duck_query(db, "select count(*), count(distinct eventid) from events")[0] == (
        len(served), len(served))
    n = sum(1 for r in served if r.get("PageDuration") == "abc")
    assert n and duck_query(db, "select count(*) from events where pageduration is null and "
                                "customvars->>'$.PageDuration' = 'abc'")[0][0] == n


def test_bigquery_loads_misfits(project: Project, make_emulator, bigquery) -> None:
    """target-bigquery (z3z1ma) never validates a record (its sink skips the SDK's validation:
    no setting); a load job with "abc" in an INTEGER column fails without the rule."""
    emu = make_emulator(start=START, days=1, events_per_hour=6, seed=42)
    emu.add_fault("download", "misfit_values", times=10**6, every=EVERY)
    end = "2024-01-02T00:00:00Z"
    project.point_at(emu, end=end)
    served = [r for hour in range(0, 24, 6) for r in _served(emu.expected_rows(
        f"2024-01-01T{hour:02d}:00:00Z",
        f"2024-01-0{1 + (hour + 6) // 24}T{(hour + 6) % 24:02d}:00:00Z"))]
    env = {**bigquery["env"], "TARGET_BIGQUERY_PROJECT": bigquery["project"],
           "TARGET_BIGQUERY_DATASET": "misfits"}  # its own dataset: the stand-in is shared
    project.run("run", "tap-fullstory", "target-bigquery", env=env, timeout=300)
    check = subprocess.run([str(bigquery["python"]), "-c", BQ_CHECK.replace("fullstory.", "misfits."),
                            bigquery["project"], "PageDuration", "abc"],
                           env={**os.environ, **bigquery["env"]},
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stderr[-3000:]
    got = json.loads(check.stdout.strip().splitlines()[-1])
    assert got["count"] == got["distinct"] == len(served)
    n = sum(1 for r in served if r.get("PageDuration") == "abc")
    assert n and got["value_rows"] == n


def test_snowflake_records_without_validation_load_misfits(make_emulator, tmp_path) -> None:
    """target-snowflake with `validate_records: false` (meltano.yml): RECORD messages with the
    misfit fault load into the fakesnow stand-in; without the rule "abc" stops the MERGE."""
    from tests.test_snowflake import SF_VENV, run_target, sf_sql, tap_messages, target_config
    from tests.test_snowflake import rows as sf_rows

    if not SF_VENV.exists():
        pytest.skip(f"{SF_VENV} missing: make services-venvs")
    emu = make_emulator(start=START, days=1, events_per_hour=6, seed=43)
    emu.add_fault("download", "misfit_values", times=10**6, every=EVERY)
    end = "2024-01-02T00:00:00Z"
    db = tmp_path / "sf"
    db.mkdir()
    run_target(db, {**target_config("FULLSTORY"), "validate_records": False, "load_method": "upsert"},
               tap_messages(emu, end, tmp_path), tmp_path)
    served = [r for hour in range(0, 24, 6) for r in _served(emu.expected_rows(
        f"2024-01-01T{hour:02d}:00:00Z",
        f"2024-01-0{1 + (hour + 6) // 24}T{(hour + 6) % 24:02d}:00:00Z"))]
    q = sf_sql([{"connect": {"database": "WAREHOUSE", "schema": "FULLSTORY"}},
                "SELECT count(*), count(DISTINCT eventid) FROM events",
                "SELECT count(*) FROM events WHERE pageduration IS NULL "
                "AND customvars:\"PageDuration\"::VARCHAR = 'abc'"], db=db)
    assert sf_rows(q[1]) == [[len(served), len(served)]]
    n = sum(1 for r in served if r.get("PageDuration") == "abc")
    assert n and sf_rows(q[2]) == [[n]]


def test_redshift_without_validation_loads_misfits(make_emulator, rs_project: Project, rs_db,
                                                   postgres) -> None:
    """target-redshift with `validate_records: false` (meltano.yml), into the Redshift stand-in."""
    from tests.test_redshift import RUN, pg

    emu = _emulator(make_emulator)
    rs_project.point_at(emu)
    rs_project.run(*RUN, "tap-fullstory", "target-redshift", timeout=300)
    served = _window_rows(emu)
    assert pg(postgres, rs_db, "select count(*), count(distinct eventid) from fullstory.events"
              )[0] == (len(served), len(served))
    n = sum(1 for r in served if r.get("PageDuration") == "abc")
    assert n and pg(postgres, rs_db, "select count(*) from fullstory.events where pageduration is "
                                     "null and customvars ->> 'PageDuration' = 'abc'")[0][0] == n
