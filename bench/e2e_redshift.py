"""The Redshift warehouse of `make bench-e2e`: the stand-in the tests use (standins/redshift/).

PostgreSQL 15 (standins/pg.sh), moto S3 (.venv-s3) and the stand-in's wire-protocol front (.venv-redshift), all on
free loopback ports; Meltano runs the stock target-redshift from .venv-redshift, as tests/test_redshift.py
does. PostgreSQL and the Python front bound the wall time here, not Redshift: the CPU seconds per program are
the figures that compare the tap's modes. Registered into WAREHOUSES by bench/e2e.py.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import urllib.request
from pathlib import Path

from bench.e2e_warehouses import Postgres, free_port
from standins.redshift import launch

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "fs-redshift-stage"


class Redshift(Postgres):
    name = "redshift"
    limit_note = ("the stand-in is PostgreSQL 15 behind a Python wire-protocol front, so PostgreSQL and the "
                  "front bound these runs, not Redshift; limit: PostgreSQL COPY of the loaded rows")
    moto = Path(os.environ.get("S3VENV") or ROOT / ".venv-s3") / "bin" / "moto_server"

    def unavailable(self) -> str | None:
        if not (launch.VENV / "bin" / "target-redshift").exists():
            return f"{launch.VENV.name} missing (make redshift-venv)"
        if not self.moto.exists():
            return "moto_server missing (make services-venvs)"
        return super().unavailable()

    def start(self, work: Path) -> None:
        super().start(work)
        self.stack = contextlib.ExitStack()
        port = free_port()
        endpoint = f"http://127.0.0.1:{port}"
        log = open(work / "moto.log", "wb")  # noqa: SIM115 - closed by the stack
        self.stack.callback(log.close)
        self.moto_proc = subprocess.Popen([str(self.moto), "-H", "127.0.0.1", "-p", str(port)],
                                          stdout=log, stderr=subprocess.STDOUT)
        self.stack.callback(self._stop_moto)
        self._create_bucket(endpoint)
        s3_env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
                  "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
        self.standin = self.stack.enter_context(launch.running(int(self.port), s3_env, work / "redshift"))

    def _create_bucket(self, endpoint: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                req = urllib.request.Request(f"{endpoint}/{BUCKET}", method="PUT")
                urllib.request.urlopen(req, timeout=5).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.moto_proc.poll() is not None:
                    raise
                time.sleep(0.1)

    def _stop_moto(self) -> None:
        self.moto_proc.terminate()
        self.moto_proc.wait(10)

    def stop(self) -> None:
        self.stack.close()
        super().stop()

    def server_pids(self) -> list[int]:
        return [*super().server_pids(), self.moto_proc.pid, self.standin.proc.pid]

    def loader_executable(self) -> str | None:
        return str(launch.VENV / "bin" / "target-redshift")

    def fresh(self, pairing: str, project: Path) -> dict[str, str]:
        db = self._db(pairing)
        self.psql("warehouse", "-c", f"DROP DATABASE IF EXISTS {db}", "-c", f"CREATE DATABASE {db}")
        return self.standin.target_env(db, BUCKET)

    def count(self, pairing: str, project: Path, keyed: bool) -> tuple[int, int | None]:
        distinct = "count(distinct eventid)" if keyed else "null"  # Redshift folds names to lower case
        out = self.psql(self._db(pairing), "-c", f"select count(*), {distinct} from fullstory.events")
        rows, n = out.split("|")
        return int(rows), int(n) if n else None
