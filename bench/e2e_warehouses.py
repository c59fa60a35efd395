"""The warehouses of `make bench-e2e`: start each stand-in, give each pairing a fresh database, count
the rows that landed, and measure the engine's own speed on the same bytes (its "limit").

A warehouse that cannot run here says why (``unavailable``) and the harness reports its pairings as
"not available: <reason>" instead of failing. Services are the ones `make test` uses: standins/pg.sh
(PostgreSQL), standins/gcp.sh (fake-gcs-server + bqemulator), the plugins' own venvs for DuckDB.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import subprocess
import sys
import time
import typing as t
from pathlib import Path

import orjson
from zlib_ng import gzip_ng

from bench.e2e_proc import run_watched, tail

ROOT = Path(__file__).resolve().parents[1]
LOADERS = ROOT / ".meltano" / "loaders"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _limit(rows: int, seconds: float, peak_rss: int, what: str, **extra: t.Any) -> dict[str, t.Any]:
    return {"what": what, "rows": rows, "seconds": round(seconds, 2),
            "rows_per_s": round(rows / seconds) if seconds > 0 else None,
            "peak_rss_mb": round(peak_rss / 2**20, 1), **extra}


def _python_json(python: Path, script: str, *args: str, env: dict[str, str] | None = None,
                 timeout: float = 1800) -> dict[str, t.Any]:
    """Run a short script in another venv; its last stdout line is JSON."""
    proc = subprocess.run([str(python), "-c", script, *args], capture_output=True, text=True,
                          env=env, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _pid_files(*paths: Path) -> list[int]:
    pids = []
    for path in paths:
        with contextlib.suppress(OSError, ValueError, IndexError):
            pids.append(int(path.read_text().split()[0]))
    return pids


class Warehouse:
    """Base: no service, nothing to count."""

    name = ""
    #: What the limit figure is, or why there is none (shown beside the pairings).
    limit_note = ""

    def unavailable(self) -> str | None:
        return None

    def start(self, work: Path) -> None:
        self.work = work

    def stop(self) -> None:
        return None

    def server_pids(self) -> list[int]:
        """The stand-in's own processes, whose CPU a pairing also spends."""
        return []

    def loader_executable(self) -> str | None:
        """A program Meltano runs instead of the installed loader (a stand-in's wrapper), if any."""
        return None

    def fresh(self, pairing: str, project: Path) -> dict[str, str]:
        """Environment for `meltano run` that points the loader at a new, empty database."""
        return {}

    def count(self, pairing: str, project: Path, keyed: bool) -> tuple[int, int | None]:
        """(rows, distinct EventId or None when the tap sends no EventId) in the pairing's database."""
        raise NotImplementedError

    def limit(self, export_gz: Path, pairing: str, project: Path) -> dict[str, t.Any] | None:
        return None

    def done(self, pairing: str) -> None:
        """After a pairing is counted: free what it loaded, so nothing of it runs into the next."""


# --- DuckDB -----------------------------------------------------------------------------------

DUCK_COUNT = """\
import duckdb, json, sys
con = duckdb.connect(sys.argv[1], read_only=True)
distinct = "count(distinct eventid)" if sys.argv[2] == "1" else "null"
print(json.dumps(con.execute(f"select count(*), {distinct} from main.events").fetchone()))
"""

DUCK_LIMIT = """\
import duckdb, json, sys, time
con = duckdb.connect(sys.argv[2])
began = time.perf_counter()
con.execute(f"CREATE TABLE events AS SELECT * FROM read_json('{sys.argv[1]}')")
seconds = time.perf_counter() - began
print(json.dumps({"seconds": seconds, "rows": con.execute("select count(*) from events").fetchone()[0],
                  "threads": con.execute("select current_setting('threads')").fetchone()[0],
                  "duckdb": duckdb.__version__}))
"""


class DuckDB(Warehouse):
    name = "duckdb"
    limit_note = "DuckDB CREATE TABLE AS read_json(<export .ndjson.gz>), same duckdb as the target"
    python = LOADERS / "target-duckdb" / "venv" / "bin" / "python"

    def unavailable(self) -> str | None:
        return None if self.python.exists() else "target-duckdb is not installed (meltano install)"

    def fresh(self, pairing: str, project: Path) -> dict[str, str]:
        return {"TARGET_DUCKDB_PATH": str(project / "output" / "e2e.duckdb")}

    def count(self, pairing: str, project: Path, keyed: bool) -> tuple[int, int | None]:
        rows, distinct = _python_json(self.python, DUCK_COUNT, str(project / "output" / "e2e.duckdb"),
                                      "1" if keyed else "0")
        return rows, distinct

    def limit(self, export_gz: Path, pairing: str, project: Path) -> dict[str, t.Any] | None:
        return self.measure(self.python, export_gz, self.work)

    @staticmethod
    def measure(python: Path, export_gz: Path, work: Path) -> dict[str, t.Any]:
        db = work / "limit.duckdb"
        log = work / "duckdb-limit.log"
        res = run_watched([str(python), "-c", DUCK_LIMIT, str(export_gz), str(db)], cwd=work,
                          env=dict(os.environ), log=log)
        if res.returncode != 0:
            raise RuntimeError(tail(log, 3))
        doc = json.loads(log.read_text().strip().splitlines()[-1])
        db.unlink(missing_ok=True)
        return _limit(doc["rows"], doc["seconds"], res.peak_rss, "DuckDB read_json CTAS",
                      threads=doc["threads"], duckdb=doc["duckdb"])


# --- PostgreSQL -------------------------------------------------------------------------------


class Postgres(Warehouse):
    name = "postgres"
    limit_note = "PostgreSQL COPY FROM of the same rows into a copy of the target's table (psql \\copy)"

    def unavailable(self) -> str | None:
        if not glob.glob("/usr/lib/postgresql/*/bin/initdb") or not shutil.which("psql"):
            return "PostgreSQL server binaries or psql missing (make services-venvs installs them)"
        return None

    def start(self, work: Path) -> None:
        super().start(work)
        self.run = work / f"{self.name}-pg"  # Redshift runs its own PostgreSQL in the same bench run
        self.run.mkdir()
        for d in (work, self.run):  # the 'postgres' OS user must traverse it
            d.chmod(0o755)
        self.env = {**os.environ, "PGPORT": str(free_port()), "RUN": str(self.run)}
        out = subprocess.run(["bash", str(ROOT / "standins" / "pg.sh"), "up"], env=self.env, check=True,
                             capture_output=True, text=True, cwd=self.run)
        self.url = out.stdout.strip().splitlines()[-1]
        self.port = self.env["PGPORT"]
        # A new cluster has one WAL segment and zero-fills the others during the first pairing's load
        # (which ran ~8 % slower than the same pairing next); 1 GB of WAL, untimed, leaves max_wal_size
        # of segments to recycle, as on a server in use.
        self.psql("warehouse", "-c", "CREATE TABLE _warm AS SELECT g, repeat('x', 900) AS pad "
                  "FROM generate_series(1, 1100000) g", "-c", "DROP TABLE _warm", "-c", "CHECKPOINT")

    def stop(self) -> None:
        subprocess.run(["bash", str(ROOT / "standins" / "pg.sh"), "down"], env=self.env, capture_output=True)

    def server_pids(self) -> list[int]:
        return _pid_files(self.run / f"pgdata-{self.port}" / "postmaster.pid")

    def _db(self, pairing: str) -> str:
        return "e2e_" + pairing.replace("-", "_")

    def _url(self, db: str) -> str:
        return self.url.rsplit("/", 1)[0] + "/" + db

    def psql(self, db: str, *args: str) -> str:
        return subprocess.run(["psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", self._url(db), *args],
                              check=True, capture_output=True, text=True).stdout.strip()

    def fresh(self, pairing: str, project: Path) -> dict[str, str]:
        db = self._db(pairing)
        self.psql("warehouse", "-c", f"DROP DATABASE IF EXISTS {db}", "-c", f"CREATE DATABASE {db}")
        return {"TARGET_POSTGRES_HOST": "127.0.0.1", "TARGET_POSTGRES_PORT": self.port,
                "TARGET_POSTGRES_USER": "postgres", "TARGET_POSTGRES_PASSWORD": "x",
                "TARGET_POSTGRES_DATABASE": db, "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": "fullstory"}

    def done(self, pairing: str) -> None:
        # the pairing's UPDATE left a dead version of every row: autovacuum would then work through
        # them during the next pairing
        self.psql("warehouse", "-c", f"DROP DATABASE IF EXISTS {self._db(pairing)} WITH (FORCE)")

    def count(self, pairing: str, project: Path, keyed: bool) -> tuple[int, int | None]:
        distinct = 'count(distinct "EventId")' if keyed else "null"
        out = self.psql(self._db(pairing), "-c", f"select count(*), {distinct} from fullstory.events")
        rows, n = out.split("|")
        return int(rows), int(n) if n else None

    def limit(self, export_gz: Path, pairing: str, project: Path) -> dict[str, t.Any] | None:
        """COPY the rows the pairing loaded, dumped to a file first, into an empty table LIKE the
        target's (same types, keys and indexes): what PostgreSQL itself takes for these rows."""
        db, dump = self._db(pairing), self.work / "pg-copy.txt"
        self.psql(db, "-c", f"\\copy fullstory.events to '{dump}'",
                  "-c", "CREATE TABLE fullstory.events_copy (LIKE fullstory.events INCLUDING ALL)")
        res = run_watched(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", self._url(db), "-c",
                           f"\\copy fullstory.events_copy from '{dump}'"], cwd=self.work,
                          env=dict(os.environ), log=self.work / "pg-copy.log")
        if res.returncode != 0:
            raise RuntimeError(tail(self.work / "pg-copy.log", 3))
        rows = int(self.psql(db, "-c", "select count(*) from fullstory.events_copy"))
        size = dump.stat().st_size
        dump.unlink()
        self.psql(db, "-c", "DROP TABLE fullstory.events_copy")
        return _limit(rows, res.seconds, res.peak_rss, "PostgreSQL COPY (psql client)",
                      text_bytes=size, rss_note="peak RSS is psql's; the server's memory is not counted")


# --- BigQuery (bqemulator) --------------------------------------------------------------------

BQ_COUNT = """\
import json, sys
from google.cloud import bigquery
project, dataset = sys.argv[1:3]
c = bigquery.Client(project=project)
distinct = "count(distinct EventId)" if sys.argv[3] == "1" else "null"
r = list(c.query(f"select count(*) n, {distinct} d from {dataset}.events").result())[0]
print(json.dumps([r.n, r.d]))
"""

BQ_LIMIT = """\
import json, sys, time
from google.cloud import bigquery
project, path = sys.argv[1:3]
c = bigquery.Client(project=project)
c.create_dataset("e2e_limit", exists_ok=True)
cfg = bigquery.LoadJobConfig(source_format="NEWLINE_DELIMITED_JSON", autodetect=True)
began = time.perf_counter()
with open(path, "rb") as f:
    c.load_table_from_file(f, f"{project}.e2e_limit.events", job_config=cfg).result()
seconds = time.perf_counter() - began
n = list(c.query("select count(*) n from e2e_limit.events").result())[0].n
print(json.dumps({"seconds": seconds, "rows": n}))
"""


class BigQuery(Warehouse):
    name = "bigquery"
    limit_note = ("bqemulator load job of the export (NDJSON, autodetect): the stand-in's speed, "
                  "not BigQuery's")
    project_id = "test-proj"
    python = ROOT / ".venv-bq" / "bin" / "python"

    def unavailable(self) -> str | None:
        return None if self.python.exists() else ".venv-bq missing (make services-venvs)"

    def start(self, work: Path) -> None:
        super().start(work)
        run = work / "gcp"
        run.mkdir()
        self.env = {**os.environ, "RUN": str(run), "TOKEN_PORT": str(free_port()),
                    "GCS_PORT": str(free_port()), "BQ_PORT": str(free_port()),
                    "BQ_GRPC_PORT": str(free_port()), "GCSVENV": str(ROOT / ".venv-gcs"),
                    "BQVENV": str(ROOT / ".venv-bq")}
        # cwd: bqemulator's DuckDB spills to ./.tmp under memory pressure; keep that in the work dir
        out = subprocess.run(["bash", str(ROOT / "standins" / "gcp.sh"), "up"], env=self.env, check=True,
                             capture_output=True, text=True, timeout=300, cwd=run).stdout
        self.svc = dict(line.removeprefix("export ").split("=", 1) for line in out.splitlines()
                        if line.startswith("export "))

    def stop(self) -> None:
        subprocess.run(["bash", str(ROOT / "standins" / "gcp.sh"), "down"], env=self.env, capture_output=True)

    def server_pids(self) -> list[int]:
        run = Path(self.env["RUN"])
        return _pid_files(run / "bqemu.pid", run / "fake-gcs.pid")

    def _dataset(self, pairing: str) -> str:
        return "e2e_" + pairing.replace("-", "_")

    def fresh(self, pairing: str, project: Path) -> dict[str, str]:
        return {**self.svc, "TARGET_BIGQUERY_PROJECT": self.project_id,
                "TARGET_BIGQUERY_DATASET": self._dataset(pairing)}

    def count(self, pairing: str, project: Path, keyed: bool) -> tuple[int, int | None]:
        rows, distinct = _python_json(self.python, BQ_COUNT, self.project_id, self._dataset(pairing),
                                      "1" if keyed else "0", env={**os.environ, **self.svc})
        return rows, distinct

    def limit(self, export_gz: Path, pairing: str, project: Path) -> dict[str, t.Any] | None:
        plain = self.work / "bq-limit.ndjson"
        with gzip_ng.open(export_gz, "rb") as src, open(plain, "wb") as dst:
            shutil.copyfileobj(src, dst, 4 << 20)
        log = self.work / "bq-limit.log"
        res = run_watched([str(self.python), "-c", BQ_LIMIT, self.project_id, str(plain)],
                          cwd=self.work, env={**os.environ, **self.svc}, log=log)
        plain.unlink()
        if res.returncode != 0:
            raise RuntimeError(tail(log, 3))
        doc = json.loads(log.read_text().strip().splitlines()[-1])
        return _limit(doc["rows"], doc["seconds"], res.peak_rss, "bqemulator load job (NDJSON)",
                      rss_note="client RSS only; the emulator's own memory is not counted")


# --- JSONL files ------------------------------------------------------------------------------


class JsonlFiles(Warehouse):
    name = "jsonl"
    limit_note = "gunzip of the export to one local file: the disk's write speed for the same rows"

    def count(self, pairing: str, project: Path, keyed: bool) -> tuple[int, int | None]:
        rows, keys = 0, set()
        with open(project / "output" / "events.jsonl", "rb") as f:
            for line in f:
                rows += 1
                keys.add(orjson.loads(line).get("EventId"))
        return rows, len(keys) if keyed else None

    def limit(self, export_gz: Path, pairing: str, project: Path) -> dict[str, t.Any] | None:
        out = self.work / "gunzip.ndjson"
        log = self.work / "gunzip.log"
        res = run_watched(["sh", "-c", f"gzip -dc '{export_gz}' > '{out}'"], cwd=self.work,
                          env=dict(os.environ), log=log)
        with open(out, "rb") as f:
            rows = sum(1 for _ in f)
        out.unlink()
        return _limit(rows, res.seconds, res.peak_rss, "gzip -dc to a file")


# --- Snowflake (fakesnow) ---------------------------------------------------------------------


class Snowflake(Warehouse):
    """fakesnow (Snowflake on DuckDB) under the target, the way tests/test_snowflake.py runs it: Meltano
    runs standins/target-snowflake-fakesnow (the target in-process under fakesnow, .venv-snowflake) instead of
    an installed target-snowflake, its databases in a directory per pairing."""

    name = "snowflake"
    limit_note = ("fakesnow is DuckDB underneath, so its speed, not Snowflake's, bounds these runs; "
                  "limit: DuckDB read_json CTAS with fakesnow's duckdb")
    venv = Path(os.environ.get("SNOWFLAKE_VENV") or ROOT / ".venv-snowflake")
    wrapper = ROOT / "standins" / "target-snowflake-fakesnow"
    sql = ROOT / "standins" / "fakesnow_sql.py"

    def unavailable(self) -> str | None:
        if not self.wrapper.exists() or not self.sql.exists():
            return "standins/target-snowflake-fakesnow not in this checkout (the snowflake branch)"
        if not (self.venv / "bin" / "fakesnow").exists():
            return f"{self.venv.name} missing (make snowflake-venv)"
        return None

    def loader_executable(self) -> str | None:
        return str(self.wrapper)

    def fresh(self, pairing: str, project: Path) -> dict[str, str]:
        db = project / "fakesnow"
        db.mkdir(exist_ok=True)
        return {"FAKESNOW_DB_PATH": str(db), "SNOWFLAKE_VENV": str(self.venv),
                "TARGET_SNOWFLAKE_PASSWORD": "x",  # the target insists on a credential
                "TARGET_SNOWFLAKE_DEFAULT_TARGET_SCHEMA": "FULLSTORY"}

    def count(self, pairing: str, project: Path, keyed: bool) -> tuple[int, int | None]:
        distinct = "count(distinct eventid)" if keyed else "null"
        steps = [{"connect": {"database": "WAREHOUSE"}},
                 f"SELECT count(*), {distinct} FROM FULLSTORY.events"]
        proc = subprocess.run([str(self.venv / "bin" / "python"), str(self.sql), "--db",
                               str(project / "fakesnow")], input=json.dumps(steps),
                              capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.strip().splitlines()[-1])
        got = json.loads(proc.stdout.strip().splitlines()[-1])[1]
        if "error" in got:
            raise RuntimeError(got["error"])
        rows, n = got["rows"][0]
        return int(rows), None if n is None else int(n)

    def limit(self, export_gz: Path, pairing: str, project: Path) -> dict[str, t.Any] | None:
        return DuckDB.measure(self.venv / "bin" / "python", export_gz, self.work)


WAREHOUSES: dict[str, type[Warehouse]] = {
    w.name: w for w in (DuckDB, Postgres, BigQuery, JsonlFiles, Snowflake)}


@contextlib.contextmanager
def started(kind: str, work: Path) -> t.Iterator[Warehouse]:
    wh = WAREHOUSES[kind]()
    began = time.perf_counter()
    wh.start(work)
    sys.stderr.write(f"  [{kind}] ready in {time.perf_counter() - began:.1f} s\n")
    try:
        yield wh
    finally:
        wh.stop()
