"""Fault matrix (issue #7): every fault the emulator can inject, end to end into a real PostgreSQL.

Each test runs the tap CLI with its stdout piped into meltanolabs-target-postgres (upserting on
EventId, no record metadata) and ends in one of two ways:

- the fault heals: the table holds exactly the emulator's expected rows (count, distinct EventIds
  and the set of EventIds computed from the emulator's rows), and a rerun adds nothing;
- the fault cannot heal: exit status != 0, the last ERROR line names the cause, no traceback, and
  the state (the tap's and the one the target echoed) never moves past the last complete window.

Bad configuration is checked here too: one clear line naming the setting, 0 requests.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import threading
import typing as t
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tap_fullstory.fields import Splitter
from tap_fullstory.keys import EventKeyer

pytestmark = pytest.mark.services

ROOT = Path(__file__).resolve().parents[1]
TAP = [sys.executable, "-m", "tap_fullstory.tap"]
TARGET = os.environ.get("TARGET_POSTGRES") or str(ROOT / ".venv-pg" / "bin" / "target-postgres")
START = "2024-01-01T00:00:00Z"
END = "2024-01-02T00:00:00Z"
WINDOW = dt.timedelta(hours=6)


# --------------------------------------------------------------------------------------------- helpers


def tap_config(emu: t.Any, **extra: t.Any) -> dict[str, t.Any]:
    return {
        "api_key": emu.api_key,
        "api_url": emu.base_url,
        "start_date": START,
        "end_date": END,
        "export_window": "6h",
        "poll_interval": 0.01,
        **extra,
    }


def target_config(postgres: t.Any, database: str, schema: str) -> dict[str, t.Any]:
    return postgres.target_config(
        database, default_target_schema=schema, add_record_metadata=False, activate_version=False
    )


@dataclass
class Load:
    """One tap -> target-postgres run: what each side printed."""

    tap_rc: int
    tap_stdout: str
    tap_stderr: str
    target_rc: int
    target_stdout: str
    target_stderr: str
    messages: list[dict] = field(default_factory=list)

    @property
    def records(self) -> list[dict]:
        return [m["record"] for m in self.messages if m["type"] == "RECORD"]

    @property
    def tap_states(self) -> list[dict]:
        return [m["value"] for m in self.messages if m["type"] == "STATE"]

    @property
    def target_states(self) -> list[dict]:
        return [json.loads(line) for line in self.target_stdout.splitlines() if line.startswith("{")]

    @property
    def target_state(self) -> dict | None:
        """The state Meltano would store: the last STATE the target echoed."""
        return self.target_states[-1] if self.target_states else None

    def tap_bookmark(self) -> str | None:
        return bookmark(self.tap_states[-1] if self.tap_states else None)

    def target_bookmark(self) -> str | None:
        return bookmark(self.target_state)

    def error_lines(self) -> list[str]:
        return [line for line in self.tap_stderr.splitlines() if "| ERROR" in line or "ERROR " in line]


def bookmark(state: dict | None) -> str | None:
    return ((state or {}).get("bookmarks", {}).get("events", {}) or {}).get("replication_key_value")


def load(
    config: dict[str, t.Any],
    target_cfg: dict[str, t.Any],
    *,
    state: dict | None = None,
    env: dict[str, str] | None = None,
    args: t.Sequence[str] = (),
    timeout: float = 120,
) -> Load:
    """Run `tap | target-postgres` (a real pipe, copied line by line so the test sees the tap's
    messages too) and wait for both."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp, "tap.json")
        cfg.write_text(json.dumps(config))
        tcfg = Path(tmp, "target.json")
        tcfg.write_text(json.dumps(target_cfg))
        cmd = [*TAP, "--config", str(cfg), *args]
        if state is not None:
            Path(tmp, "state.json").write_text(json.dumps(state))
            cmd += ["--state", str(Path(tmp, "state.json"))]
        full_env = {**os.environ, **(env or {})}
        tap_err, target_out, target_err = (Path(tmp, n) for n in ("tap.err", "target.out", "target.err"))
        with open(tap_err, "wb") as err, open(target_out, "wb") as tout, open(target_err, "wb") as terr:
            tap = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=full_env)
            target = subprocess.Popen(
                [TARGET, "--config", str(tcfg)], stdin=subprocess.PIPE, stdout=tout, stderr=terr
            )
            copied: list[bytes] = []

            def pump() -> None:
                assert tap.stdout is not None and target.stdin is not None
                try:
                    for line in tap.stdout:
                        copied.append(line)
                        target.stdin.write(line)
                except BrokenPipeError:  # the target died; its exit status tells
                    pass
                finally:
                    with contextlib.suppress(BrokenPipeError):
                        target.stdin.close()

            pumper = threading.Thread(target=pump, daemon=True)
            pumper.start()
            try:
                tap.wait(timeout=timeout)
                pumper.join(timeout=timeout)
                target.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                tap.kill()
                target.kill()
                raise
        tap_stdout = b"".join(copied).decode()
        messages = [json.loads(x) for x in tap_stdout.splitlines() if x.startswith("{")]
        return Load(
            tap.returncode, tap_stdout, tap_err.read_text(errors="replace"), target.returncode,
            target_out.read_text(), target_err.read_text(errors="replace"), messages,
        )


def table(url: str, schema: str) -> tuple[int, int, set[str]]:
    """(count, distinct EventIds, EventIds) of schema.events; (0, 0, {}) if it does not exist."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as con:
        exists = con.execute("SELECT to_regclass(%s)", (f'"{schema}".events',)).fetchone()
        if not exists or exists[0] is None:
            return 0, 0, set()
        count, distinct = con.execute(
            f'SELECT count(*), count(DISTINCT "EventId") FROM "{schema}".events'
        ).fetchone()
        ids = {r[0] for r in con.execute(f'SELECT "EventId" FROM "{schema}".events')}
    return count, distinct, ids


def at(moment: str) -> dt.datetime:
    return dt.datetime.fromisoformat(moment.replace("Z", "+00:00"))


def iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def windows(start: str = START, end: str = END, step: dt.timedelta = WINDOW) -> list[tuple[str, str]]:
    out, s = [], at(start)
    while s < at(end):
        out.append((iso(s), iso(min(s + step, at(end)))))
        s += step
    return out


def expected_ids(emu: t.Any, spans: t.Iterable[tuple[str, str]]) -> set[str]:
    """EventIds of the emulator's rows, keyed window by window as the tap keys them."""
    ids: set[str] = set()
    for start, end in spans:
        splitter, keyer = Splitter(mobile=False), EventKeyer(whole_window=True)
        for row in emu.expected_rows(start, end):
            cols, _ = splitter.split(row)
            ids.add(keyer.key(cols))
    return ids


def expected_count(emu: t.Any, spans: t.Iterable[tuple[str, str]]) -> int:
    return sum(len(emu.expected_rows(s, e)) for s, e in spans)


def assert_exact(url: str, schema: str, emu: t.Any, spans: list[tuple[str, str]]) -> None:
    count, distinct, ids = table(url, schema)
    want = expected_ids(emu, spans)
    assert count == distinct == expected_count(emu, spans) == len(want) > 0
    assert ids == want


def assert_clean_failure(run: Load, *cause: str) -> None:
    """README "Guarantees" item 4: exit status 1, one ERROR line naming the cause, no traceback."""
    assert run.tap_rc == 1, (run.tap_rc, run.tap_stderr[-2000:])
    assert "Traceback" not in run.tap_stderr, run.tap_stderr[-3000:]
    errors = run.error_lines()
    assert len(errors) == 1, errors or run.tap_stderr[-2000:]
    for word in cause:
        assert word in errors[0], errors[0]
    assert run.target_rc == 0, run.target_stderr[-2000:]


def assert_state_at(run: Load, complete_until: str | None) -> None:
    """Neither the tap's last STATE nor the target's echo is past the last complete window."""
    assert run.tap_bookmark() == complete_until
    assert run.target_bookmark() == complete_until


@pytest.fixture(scope="module")
def pg(postgres) -> t.Iterator[tuple[t.Any, str, str]]:
    url = postgres.create_database()
    name = url.rsplit("/", 1)[1]
    try:
        yield postgres, name, url
    finally:
        postgres.drop_database(name)


def new_schema() -> str:
    return f"s_{uuid.uuid4().hex[:10]}"


# --------------------------------------------------------------------------------------------- faults that heal

HEALING = [
    # (id, endpoint, kind, nth, times, params)
    ("429_json_create", "create", "429_json", 2, 2, {"retry_after": 0}),
    ("429_html_operation", "operation", "429_html", 3, 1, {"retry_after": 1}),
    ("429_json_download", "download", "429_json", 2, 1, {"retry_after": 0}),
    ("500_results", "results", "500", 2, 1, {}),
    ("503_create", "create", "503", 3, 1, {"retry_after": 0}),
    ("503_download_no_retry_after", "download", "503", 3, 1, {}),
    ("reset_create", "create", "reset", 2, 1, {}),
    ("reset_operation", "operation", "reset", 2, 1, {}),
    ("reset_results", "results", "reset", 3, 1, {}),
    ("reset_download", "download", "reset", 2, 1, {}),
    ("reset_after_bytes", "download", "reset_after_bytes", 2, 1, {"bytes": 1500}),
    ("truncated_gzip", "download", "truncated_gzip", 3, 1, {}),
    ("expired_url", "download", "expired", 2, 1, {}),
]


@pytest.mark.parametrize(
    ("endpoint", "kind", "nth", "times", "params"),
    [pytest.param(*case[1:], id=case[0]) for case in HEALING],
)
def test_fault_heals_to_exact_table(make_emulator, pg, endpoint, kind, nth, times, params) -> None:
    postgres, db, url = pg
    emu = make_emulator(start=START, days=1, events_per_hour=12, seed=11)
    emu.add_fault(endpoint, kind, nth=nth, times=times, **params)
    schema = new_schema()
    run = load(tap_config(emu), target_config(postgres, db, schema))
    assert run.tap_rc == 0, run.tap_stderr[-3000:]
    assert run.target_rc == 0, run.target_stderr[-3000:]
    stats = emu.stats()
    assert [f["kind"] for f in stats["faults"]] == [kind] * times, stats["faults"]
    assert_exact(url, schema, emu, windows())
    assert run.tap_bookmark() == run.target_bookmark() == END
    assert "Traceback" not in run.tap_stderr
    if kind in ("expired", "truncated_gzip", "reset_after_bytes", "reset"):
        assert "WARNING" in run.tap_stderr  # the recovery is visible in the log
    if kind == "expired":
        # fresh results were asked for: one more results call than windows
        assert stats["requests"]["results"] == len(windows()) + 1
    if kind == "reset_after_bytes":
        # resumed with a Range request: the bytes served are the file sizes, not one more whole file
        files = sum(f["bytes"] for f in stats["files"] if f["rows"])
        assert stats["bytes_served"] <= files + 1500
    if kind == "truncated_gzip":
        assert stats["requests"]["download"] == len(windows()) + 1


def test_bundles_rate_limit_429_heals(make_emulator, pg) -> None:
    """The legacy API's 2-downloads-per-minute 429 (JSON and HTML bodies) is waited out."""
    postgres, db, url = pg
    emu = make_emulator(start=START, days=1, events_per_hour=12, seed=12, bundle_hours=6)
    emu.add_fault("get", "429_json", nth=2, times=1, retry_after=1)
    emu.add_fault("get", "429_html", nth=4, times=1, retry_after=0)
    emu.add_fault("list", "503", nth=1, times=1, retry_after=0)
    schema = new_schema()
    run = load(tap_config(emu, export_api="bundles", export_window="6h"), target_config(postgres, db, schema))
    assert run.tap_rc == 0, run.tap_stderr[-3000:]
    assert [f["kind"] for f in emu.stats()["faults"]] == ["503", "429_json", "429_html"]
    spans = [(iso(dt.datetime.fromtimestamp(b["Start"], dt.timezone.utc)),
              iso(dt.datetime.fromtimestamp(b["Stop"], dt.timezone.utc))) for b in emu.bundles()]
    assert_exact(url, schema, emu, spans)
    assert run.target_bookmark() == END


# --------------------------------------------------------------------------------------------- malformed row


def test_malformed_row_fails_the_window_then_a_clean_rerun_completes_it(make_emulator, pg) -> None:
    postgres, db, url = pg
    emu = make_emulator(start=START, days=1, events_per_hour=12, seed=14)
    emu.add_fault("download", "malformed_row", nth=3, row=7)
    schema = new_schema()
    tcfg = target_config(postgres, db, schema)
    failed = load(tap_config(emu), tcfg)
    assert_clean_failure(failed, "row 7", "2024-01-01T12:00:00Z", "on_bad_row: quarantine")
    # windows 1 and 2 complete; the third (rows 1..6 of it may have been loaded) is not bookmarked
    assert_state_at(failed, "2024-01-01T12:00:00Z")
    count, distinct, ids = table(url, schema)
    assert count == distinct
    assert expected_ids(emu, windows(START, "2024-01-01T12:00:00Z")) <= ids
    # never skipped silently: the rows after the bad one are not in the table yet
    assert count < expected_count(emu, windows(START, "2024-01-01T18:00:00Z"))
    rerun = load(tap_config(emu), tcfg, state=failed.target_state)
    assert rerun.tap_rc == 0, rerun.tap_stderr[-3000:]
    assert all(r["ExportStart"] >= "2024-01-01T12:00:00Z" for r in rerun.records)
    assert_exact(url, schema, emu, windows())
    assert rerun.target_bookmark() == END


# --------------------------------------------------------------------------------------------- faults that cannot heal


def complete_until(emu: t.Any) -> str | None:
    """End of the last complete window: the start of the first window a fault hit. Every window
    before it completed; with exports prepared ahead (max_pending_exports > 1) faults may also hit
    later windows, and the run stops at the earliest."""
    hit = [f["window"][0] for f in emu.stats()["faults"] if "window" in f]
    assert hit, emu.stats()["faults"]
    return None if min(hit) == START else min(hit)


def check_stops_at_last_complete_window(run: Load, emu: t.Any, url: str, schema: str) -> None:
    until = complete_until(emu)
    assert_state_at(run, until)
    if until is None:
        assert table(url, schema)[0] == 0
    else:
        assert_exact(url, schema, emu, windows(START, until))


FATAL = [
    # (id, faults, extra tap config, words the last ERROR line must contain)
    ("operation_failed", [("operation", "failed", 4, 2, {"message": "export failed: quota"})],
     {"poll_interval": 0.05}, ["FAILED", "export failed: quota"]),
    ("stuck_pending", [("operation", "stuck_pending", 4, 2, {})],
     {"poll_interval": 0.05, "poll_timeout": 0.5}, ["PENDING", "poll_timeout"]),
    ("401_create", [("create", "401", 2, 1, {})], {}, ["rejected the API key", "401"]),
    ("404_results_permanent", [("results", "404", 2, 100, {})], {}, ["404", "api_url"]),
    ("retries_exhausted_create", [("create", "503", 2, 100, {"retry_after": 0})], {},
     ["Gave up", "503"]),
    ("retries_exhausted_download", [("download", "429_json", 2, 100, {"retry_after": 0})], {},
     ["429", "download"]),
    ("expired_every_time", [("download", "expired", 2, 100, {})], {}, ["signed download URL"]),
]


@pytest.mark.parametrize("pending", [1, None], ids=["sequential", "pipelined"])
@pytest.mark.parametrize(
    ("faults", "extra", "cause"), [pytest.param(*case[1:], id=case[0]) for case in FATAL]
)
def test_fault_that_cannot_heal_stops_cleanly(make_emulator, pg, faults, extra, cause, pending) -> None:
    """Sequential (max_pending_exports=1) and with the default pipelining: the same stop."""
    postgres, db, url = pg
    emu = make_emulator(start=START, days=1, events_per_hour=12, seed=15)
    for endpoint, kind, nth, times, params in faults:
        emu.add_fault(endpoint, kind, nth=nth, times=times, **params)
    schema = new_schema()
    if pending is not None:
        extra = {**extra, "max_pending_exports": pending}
    run = load(tap_config(emu, **extra), target_config(postgres, db, schema))
    assert_clean_failure(run, *cause)
    assert emu.stats()["faults"], "the fault never fired"
    check_stops_at_last_complete_window(run, emu, url, schema)


def test_wrong_api_key_fails_on_the_first_call(make_emulator, pg) -> None:
    postgres, db, url = pg
    emu = make_emulator(start=START, days=1, events_per_hour=12, seed=16)
    config = {**tap_config(emu), "api_key": "not-the-key"}
    schema = new_schema()
    run = load(config, target_config(postgres, db, schema))
    assert_clean_failure(run, "rejected the API key", "401")
    assert emu.stats()["requests"] == {"create": 1}
    assert_state_at(run, None)
    assert table(url, schema)[0] == 0


def test_bundles_404_on_list(make_emulator, pg) -> None:
    postgres, db, url = pg
    emu = make_emulator(start=START, days=1, events_per_hour=12, seed=17, bundle_hours=6)
    emu.add_fault("list", "404", nth=1, times=100)
    schema = new_schema()
    run = load(tap_config(emu, export_api="bundles"), target_config(postgres, db, schema))
    assert_clean_failure(run, "404", "api_url")
    assert_state_at(run, None)
    assert table(url, schema)[0] == 0


# --------------------------------------------------------------------------------------------- reruns


def test_rerun_of_a_completed_range_adds_no_rows(make_emulator, pg) -> None:
    postgres, db, url = pg
    emu = make_emulator(start=START, days=1, events_per_hour=12, seed=18)
    emu.add_fault("download", "reset_after_bytes", nth=1, bytes=900)
    schema = new_schema()
    tcfg = target_config(postgres, db, schema)
    first = load(tap_config(emu), tcfg)
    assert first.tap_rc == 0, first.tap_stderr[-3000:]
    assert_exact(url, schema, emu, windows())
    before = table(url, schema)
    # the whole range exported again (no state): every row upserts onto itself
    again = load(tap_config(emu), tcfg)
    assert again.tap_rc == 0 and len(again.records) == before[0]
    assert table(url, schema) == before
    # a part of the range again (a window in the middle, from a hand-made state)
    middle = load(tap_config(emu, end_date="2024-01-01T18:00:00Z"), tcfg,
                  state={"bookmarks": {"events": {"replication_key": "ExportStart",
                                                  "replication_key_value": "2024-01-01T06:00:00Z"}}})
    assert middle.tap_rc == 0 and middle.records
    assert table(url, schema) == before
    # from the state the target echoed: nothing to do
    last = load(tap_config(emu), tcfg, state=first.target_state)
    assert last.tap_rc == 0 and last.records == []
    assert table(url, schema) == before
    assert last.target_bookmark() == END


# --------------------------------------------------------------------------------------------- bad config

BAD_CONFIG = [
    ("api_key", {"api_key": ""}),
    ("api_key", {"api_key": None}),
    ("api_url", {"api_url": "ftp://example.com"}),
    ("export_api", {"export_api": "graphql"}),
    ("start_date", {"start_date": "yesterday"}),
    ("end_date", {"end_date": "2023-12-31T00:00:00Z"}),
    ("export_window", {"export_window": "7h"}),
    ("export_window", {"export_window": "5m"}),
    ("export_window", {"export_window": "forever"}),
    ("export_delay", {"export_delay": "10m"}),
    ("request_timeout", {"request_timeout": 0}),
    ("request_timeout", {"request_timeout": "soon"}),
    ("poll_interval", {"poll_interval": -1}),
    ("poll_timeout", {"poll_timeout": 0}),
    ("event_id", {"event_id": "no"}),
    ("include_mobile_fields", {"include_mobile_fields": "yes"}),
    ("additional_headers", {"additional_headers": {"X-Team": 7}}),
    ("segment_id", {"segment_id": 12}),
    ("max_pending_exports", {"max_pending_exports": 0}),
    ("max_pending_exports", {"max_pending_exports": "4"}),
]


@pytest.fixture(scope="module")
def idle_emulator(make_emulator_module):
    return make_emulator_module(start=START, days=1, events_per_hour=6, seed=19)


@pytest.mark.parametrize(
    ("setting", "change"), [pytest.param(s, c, id=f"{s}-{i}") for i, (s, c) in enumerate(BAD_CONFIG)]
)
def test_bad_config_one_clear_line_before_any_request(idle_emulator, setting, change) -> None:
    from tests.tapio import run_tap

    idle_emulator.reset_stats()
    config = {k: v for k, v in {**tap_config(idle_emulator), **change}.items() if v is not None}
    run = run_tap(config)
    assert run.returncode != 0
    assert "Traceback" not in run.stderr, run.stderr[-2000:]
    assert run.messages == []
    errors = [line for line in run.stderr.splitlines() if "| ERROR" in line]
    # one line naming the setting, then the SDK's fixed summary "Config validation failed"
    causes = [line for line in errors if not line.endswith("Config validation failed")]
    assert len(causes) == 1, errors
    assert setting in causes[0], causes[0]
    assert idle_emulator.stats()["requests"] == {}
