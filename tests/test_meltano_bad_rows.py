"""Bad rows end to end (issue #15): `meltano run tap-fullstory target-postgres` over an emulator that
serves the bytes verbatim through the real download path.

- A row with NUL characters loads, stripped, with the default `nul_characters: strip`.
- With `nul_characters: keep` PostgreSQL refuses it, and the run's output names the setting that
  fixes it.
- An undecodable row with `on_bad_row: quarantine`: every other row of its window is loaded exactly
  once, the quarantine file names the row, and a full-refresh rerun adds 0 rows (and writes the
  same quarantine file).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tap_fullstory.fields import Splitter
from tap_fullstory.keys import EventKeyer
from tests import test_meltano
from tests.test_meltano import END, START, Project, pg_env, pg_query

# test_meltano's fixtures, here too: the installed plugins, a scratch project, a fresh database
installed, project, pg_database = (test_meltano.installed, test_meltano.project,
                                   test_meltano.pg_database)

pytestmark = pytest.mark.meltano

NUL_ROW = (b'{"EventStart":"2024-01-01T00:00:00.000Z","EventType":"click","UserId":4242,'
           b'"SessionId":1,"PageId":1,"EventTargetText":"bad\\u0000text",'
           b'"user_note_str":"a\\u0000b"}')
INVALID = b'{"EventStart":"2024-01-01T00:00:00.000Z","EventType":"click","x":"\xff\xfe"}'


def _nul_emulator(make_emulator):
    emu = make_emulator(start=START, days=2, events_per_hour=12, seed=31)
    emu.add_fault("download", "raw_row", nth=1, row=1, raw=NUL_ROW)  # the first window's file
    return emu


def test_nul_row_loads_stripped_with_the_default(project: Project, make_emulator, postgres,
                                                 pg_database) -> None:
    db, url = pg_database
    emu = _nul_emulator(make_emulator)
    project.point_at(emu)
    run = project.run("run", "tap-fullstory", "target-postgres",
                      env=pg_env(postgres, db, "fullstory"), timeout=240)
    expected = emu.expected_rows(START, END)
    assert pg_query(url, 'select count(*), count(distinct "EventId") from fullstory.events')[0] == (
        len(expected) + 1, len(expected) + 1)
    assert pg_query(url, 'select "EventTargetText", "CustomVars" ->> %s from fullstory.events '
                         'where "UserId" = 4242', "user_note_str") == [("badtext", "ab")]
    assert "held NUL characters (U+0000): removed" in run.stderr + run.stdout


def test_nul_row_with_keep_fails_naming_the_setting(project: Project, make_emulator, postgres,
                                                    pg_database) -> None:
    db, _ = pg_database
    project.point_at(_nul_emulator(make_emulator))
    run = project.run("run", "tap-fullstory", "target-postgres", timeout=240, check=False,
                      env={**pg_env(postgres, db, "fullstory"),
                           "TAP_FULLSTORY_NUL_CHARACTERS": "keep"})
    out = run.stdout + run.stderr
    assert run.returncode != 0, out[-3000:]
    assert "text fields cannot contain NUL" in out, out[-3000:]  # the target's refusal...
    assert "set nul_characters: strip" in out, out[-3000:]  # ...and the tap's way out


def _expected_ids(emu) -> set[str]:
    """EventIds of the emulator's rows, window by window (6 h) as the tap keys them."""
    ids: set[str] = set()
    for hour in range(0, 48, 6):
        start = f"2024-01-{1 + hour // 24:02d}T{hour % 24:02d}:00:00Z"
        end = (f"2024-01-{1 + (hour + 6) // 24:02d}T{(hour + 6) % 24:02d}:00:00Z")
        splitter, keyer = Splitter(mobile=False), EventKeyer(whole_window=True)
        ids.update(keyer.key(splitter.split(row)[0]) for row in emu.expected_rows(start, end))
    return ids


def test_quarantined_row_leaves_every_other_row_once_and_a_rerun_adds_none(
        project: Project, make_emulator, postgres, pg_database, tmp_path: Path) -> None:
    db, url = pg_database
    emu = make_emulator(start=START, days=2, events_per_hour=12, seed=32)
    emu.add_fault("download", "raw_row", times=1000, row=40, raw=INVALID)  # in every window
    project.point_at(emu)
    quarantine = tmp_path / "quarantine"
    env = {**pg_env(postgres, db, "fullstory"), "TAP_FULLSTORY_ON_BAD_ROW": "quarantine",
           "TAP_FULLSTORY_QUARANTINE_PATH": str(quarantine)}
    run = project.run("run", "tap-fullstory", "target-postgres", env=env, timeout=240)
    want = _expected_ids(emu)
    count, distinct = pg_query(url, 'select count(*), count(distinct "EventId") from fullstory.events')[0]
    assert count == distinct == len(want) == len(emu.expected_rows(START, END))
    assert {r[0] for r in pg_query(url, 'select "EventId" from fullstory.events')} == want

    def entries() -> list[dict]:
        return [json.loads(line) for path in sorted(quarantine.glob("*.jsonl"))
                for line in path.read_text().splitlines()]

    first = entries()
    # one bad row per 6 h window of events, each named once; and one in the individuals export
    # (the project selects both streams; one export over the whole range)
    events = [e for e in first if e["stream"] == "events"]
    assert len(events) == 8 and len(first) == 9
    assert [(e["export_start"], e["export_end"]) for e in first if e["stream"] == "individuals"
            ] == [(START, END)]
    assert {(e["row"], base64.b64decode(e["raw_base64"])) for e in events} == {(40, INVALID)}
    assert {base64.b64decode(e["raw_base64"]) for e in first} == {INVALID}
    assert events[0]["export_start"] == START and events[-1]["export_end"] == END
    assert "could not be decoded (row 40)" in run.stderr + run.stdout

    rerun = project.run("run", "--full-refresh", "tap-fullstory", "target-postgres", env=env,
                        timeout=240)
    assert "Nothing to export" not in rerun.stderr + rerun.stdout  # every window exported again
    assert pg_query(url, 'select count(*) from fullstory.events')[0][0] == count
    assert entries() == first
