"""Crash-resume soak (issue #7): kill -9 the tap at random moments, resume the way Meltano does,
and compare the final PostgreSQL table with a clean run.

    .venv/bin/python bench/soak.py [--runs 20] [--kills 2] [--seed 1] [--days 7]
                                   [--events-per-hour 60] [--window 6h] [--pg-url URL]
                                   [--max-pending-exports N] [--prepare-seconds S]

One emulator (in this process) serves a ``--days`` backfill; one PostgreSQL (started with
standins/pg.sh on a free port unless ``--pg-url`` points at a running one) receives everything through
meltanolabs-target-postgres (``.venv-pg``; upsert on EventId, no record metadata), the tap's
stdout piped straight into the target's stdin.

1. A clean run loads the whole range into schema ``clean``.
2. Each of ``--runs`` trials loads the same range into its own schema: the tap is started
   ``--kills`` times and ``kill -9``-ed at a random moment (uniform over the estimated remaining
   run time), then started once more and left to finish. Every start gets the state Meltano would
   pass: the last STATE line the *target* printed on its stdout (the previous one when a run's
   target printed none). After each kill the script checks that the state never covers a window
   that is not fully in the table.
3. The trial's final table is compared with the clean one: row count, the set of EventIds, and
   every row's full contents.

Prints one line per trial and ``N/N final tables equal to the clean run``; exit 0 only if all are.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import typing as t
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tap_fullstory.testing import Emulator  # noqa: E402

TAP = [sys.executable, "-m", "tap_fullstory.tap"]
TARGET = os.environ.get("TARGET_POSTGRES") or str(ROOT / ".venv-pg" / "bin" / "target-postgres")
START = "2024-01-01T00:00:00Z"
API_KEY = "soak-key"
STARTUP = 0.6  # seconds from starting the tap to its first request, roughly


# --------------------------------------------------------------------------------------------- PostgreSQL


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def postgres(url: str | None) -> t.Iterator[str]:
    """The given server, or a throwaway one from standins/pg.sh; yields the URL of a fresh database."""
    if url:
        yield _fresh_database(url)
        return
    run = Path(tempfile.mkdtemp(prefix="tap-fullstory-soak-pg-"))
    run.chmod(0o755)  # the server may run as the 'postgres' OS user
    env = {**os.environ, "PGPORT": str(_free_port()), "RUN": str(run)}
    try:
        up = subprocess.run(["bash", str(ROOT / "standins" / "pg.sh"), "up"], env=env, capture_output=True,
                            text=True, timeout=120)
        if up.returncode != 0:
            raise SystemExit(f"standins/pg.sh up failed:\n{up.stdout}\n{up.stderr}")
        yield _fresh_database(up.stdout.strip().splitlines()[-1])
    finally:
        subprocess.run(["bash", str(ROOT / "standins" / "pg.sh"), "down"], env=env, capture_output=True, timeout=60)
        shutil.rmtree(run, ignore_errors=True)


def _fresh_database(url: str) -> str:
    import psycopg

    name = f"soak_{os.getpid()}_{random.randrange(1 << 30)}"
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    return url.rsplit("/", 1)[0] + f"/{name}"


def target_config(url: str, schema: str) -> dict[str, t.Any]:
    parts = urlsplit(url)
    return {
        "host": parts.hostname, "port": parts.port or 5432, "user": parts.username or "postgres",
        "password": parts.password or "x", "database": parts.path.lstrip("/"),
        "default_target_schema": schema, "add_record_metadata": False, "activate_version": False,
    }


def rows(url: str, schema: str) -> dict[str, dict[str, t.Any]]:
    """Every row of schema.events as JSON, by EventId (duplicates would be caught by the count)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as con:
        if con.execute("SELECT to_regclass(%s)", (f'"{schema}".events',)).fetchone()[0] is None:
            return {}
        found = con.execute(f'SELECT "EventId", to_jsonb(e) FROM "{schema}".events e').fetchall()
    out = {eid: doc for eid, doc in found}
    if len(out) != len(found):
        raise AssertionError(f"{schema}.events: {len(found)} rows but {len(out)} distinct EventIds")
    return out


def count_before(url: str, schema: str, bookmark: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as con:
        if con.execute("SELECT to_regclass(%s)", (f'"{schema}".events',)).fetchone()[0] is None:
            return 0
        return int(con.execute(
            f'SELECT count(*) FROM "{schema}".events WHERE "ExportStart" < %s',
            (bookmark.replace("T", " ").rstrip("Z"),),
        ).fetchone()[0])


# --------------------------------------------------------------------------------------------- one run


@dataclass
class Run:
    tap_rc: int
    target_rc: int
    killed: bool  # the kill landed while the tap was still running
    state: dict | None  # the last STATE the target printed (None: it printed none)
    seconds: float  # tap + target
    tap_seconds: float  # until the tap exited (or was killed)
    target_stderr: str


def run_pipeline(config: dict, target_cfg: dict, state: dict | None, kill_after: float | None,
                 workdir: Path) -> Run:
    """tap | target-postgres, the tap's stdout straight into the target's stdin (an OS pipe)."""
    cfg, tcfg, st = workdir / "tap.json", workdir / "target.json", workdir / "state.json"
    cfg.write_text(json.dumps(config))
    tcfg.write_text(json.dumps(target_cfg))
    cmd = [*TAP, "--config", str(cfg)]
    if state is not None:
        st.write_text(json.dumps(state))
        cmd += ["--state", str(st)]
    began = time.monotonic()
    with open(workdir / "tap.err", "ab") as tap_err, open(workdir / "target.err", "wb") as target_err:
        tap = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=tap_err)
        target = subprocess.Popen([TARGET, "--config", str(tcfg)], stdin=tap.stdout,
                                  stdout=subprocess.PIPE, stderr=target_err)
        assert tap.stdout is not None
        tap.stdout.close()  # only the target holds the read end now
        killed = False
        try:
            tap.wait(timeout=kill_after if kill_after is not None else 600)
        except subprocess.TimeoutExpired:
            if kill_after is None:
                raise
            os.kill(tap.pid, signal.SIGKILL)
            killed = True
        tap_seconds = time.monotonic() - began
        out, _ = target.communicate(timeout=600)
        tap.wait(timeout=60)
    states = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    return Run(tap.returncode, target.returncode, killed, states[-1] if states else None,
               time.monotonic() - began, tap_seconds,
               (workdir / "target.err").read_text(errors="replace")[-2000:])


def bookmark(state: dict | None) -> str | None:
    return ((state or {}).get("bookmarks", {}).get("events", {}) or {}).get("replication_key_value")


# --------------------------------------------------------------------------------------------- soak


def compare(clean: dict[str, dict], other: dict[str, dict]) -> str:
    """'' when equal, else a short description of the first differences."""
    if clean == other:
        return ""
    missing, extra = clean.keys() - other.keys(), other.keys() - clean.keys()
    changed = [k for k in clean.keys() & other.keys() if clean[k] != other[k]]
    return (f"{len(other)} rows vs {len(clean)}; {len(missing)} missing, {len(extra)} extra, "
            f"{len(changed)} with different contents")


def soak(args: argparse.Namespace, log: t.Callable[[str], None] = print) -> tuple[int, int]:
    rng = random.Random(args.seed)
    start = dt.datetime.fromisoformat(START.replace("Z", "+00:00"))
    end = start + dt.timedelta(days=args.days)
    end_text = end.strftime("%Y-%m-%dT%H:%M:%SZ")
    with Emulator(API_KEY, seed=args.seed, start=START, days=args.days,
                  events_per_hour=args.events_per_hour, prepare_seconds=args.prepare_seconds) as emu, \
            postgres(args.pg_url) as url, \
            tempfile.TemporaryDirectory(prefix="tap-fullstory-soak-") as tmp:
        # A killed tap leaves connections the emulator's socketserver would report with a traceback.
        if emu._server is not None:
            emu._server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        config = {"api_key": API_KEY, "api_url": emu.base_url, "start_date": START, "end_date": end_text,
                  "export_window": args.window, "poll_interval": 0.01}
        if args.max_pending_exports is not None:
            config["max_pending_exports"] = args.max_pending_exports
        expected = sum(1 for _ in emu.expected_rows(START, end_text))

        workdir = Path(tmp, "clean")
        workdir.mkdir()
        # a first start of the tap compiles its modules (a fresh clone): done here, so that the
        # clean run's time, which places the kills, is a warm start like the runs that follow
        cfg = workdir / "warm-up.json"
        cfg.write_text(json.dumps(config))
        subprocess.run([*TAP, "--config", str(cfg), "--discover"], capture_output=True, check=True)
        clean_run = run_pipeline(config, target_config(url, "clean"), None, None, workdir)
        if clean_run.tap_rc != 0 or clean_run.target_rc != 0 or bookmark(clean_run.state) != end_text:
            raise SystemExit(f"clean run failed (tap {clean_run.tap_rc}, target {clean_run.target_rc}); "
                             f"logs in {workdir}:\n{clean_run.target_stderr}")
        clean = rows(url, "clean")
        if len(clean) != expected:
            raise SystemExit(f"clean run loaded {len(clean)} rows, the emulator has {expected}")
        work = max(0.5, clean_run.tap_seconds - STARTUP)
        log(f"clean run: {len(clean)} rows, {args.days} days, tap {clean_run.tap_seconds:.1f} s, "
            f"tap + target {clean_run.seconds:.1f} s")

        equal = 0
        for trial in range(1, args.runs + 1):
            schema = f"crash_{trial}"
            workdir = Path(tmp, schema)
            workdir.mkdir()
            tcfg = target_config(url, schema)
            state: dict | None = None
            landed, notes = 0, []
            for _ in range(args.kills):
                done = bookmark(state)
                left = 1.0 if done is None else max(
                    0.0, (end - dt.datetime.fromisoformat(done.replace("Z", "+00:00"))) / (end - start))
                if left <= 0:
                    break
                # a uniform moment of the run: start-up plus the work still left
                kill_after = rng.uniform(0.1, STARTUP + 0.95 * work * left)
                run = run_pipeline(config, tcfg, state, kill_after, workdir)
                landed += run.killed
                if run.target_rc != 0:  # e.g. a RECORD line cut by the kill: the target fails
                    notes.append(f"(target exit {run.target_rc})")
                if run.state is not None:
                    state = run.state
                # the state never covers a window that is not fully loaded
                mark = bookmark(state)
                if mark is not None:
                    have = count_before(url, schema, mark)
                    want = sum(1 for r in clean.values() if r["ExportStart"] < mark.rstrip("Z"))
                    if have != want:
                        notes.append(f"after a kill the state says {mark} but {have}/{want} rows before it")
                notes.append(f"kill@{kill_after:.2f}s->{mark or '-'}" + ("" if run.killed else "(finished)"))
            final = run_pipeline(config, tcfg, state, None, workdir)
            if final.tap_rc != 0 or final.target_rc != 0:
                notes.append(f"resume failed: tap {final.tap_rc}, target {final.target_rc}")
            if bookmark(final.state) != end_text:
                notes.append(f"final state {bookmark(final.state)}")
            diff = compare(clean, rows(url, schema))
            ok = not diff and not any("fail" in n or "rows before" in n or "final state" in n for n in notes)
            equal += ok
            log(f"trial {trial:2d}: {'EQUAL' if ok else 'DIFFERENT'} ({landed}/{args.kills} kills landed mid-run; "
                f"{' '.join(notes)}){'; ' + diff if diff else ''}")
            if ok and not args.keep:
                import psycopg

                with psycopg.connect(url, autocommit=True) as con:
                    con.execute(f'DROP SCHEMA "{schema}" CASCADE')
        log(f"{equal}/{args.runs} final tables equal to the clean run")
        return equal, args.runs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=20, help="trials (crash-resume sequences), default 20")
    p.add_argument("--kills", type=int, default=2, help="kill -9 per trial before the final resume, default 2")
    p.add_argument("--seed", type=int, default=1, help="seed for the data and the kill moments")
    p.add_argument("--days", type=float, default=7, help="backfill length in days, default 7")
    p.add_argument("--events-per-hour", type=int, default=60)
    p.add_argument("--window", default="6h", help="the tap's export_window, default 6h")
    p.add_argument("--pg-url", default=None, help="use this PostgreSQL server instead of starting one")
    p.add_argument("--keep", action="store_true", help="keep the trial schemas")
    p.add_argument("--max-pending-exports", type=int, default=None,
                   help="the tap's max_pending_exports (default: the tap's default, pipelined)")
    p.add_argument("--prepare-seconds", default="0",
                   help="emulator: seconds each export stays PENDING (BASE[,PER_MB]), so kills land while "
                        "exports are prepared ahead")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    equal, runs = soak(parse_args(argv))
    return 0 if equal == runs else 1


if __name__ == "__main__":
    sys.exit(main())
