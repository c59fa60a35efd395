"""Start and stop the Redshift stand-in (tests and `make bench-e2e`); standard library only.

The stand-in runs in .venv-redshift (make redshift-venv) in front of a running PostgreSQL and S3 (moto); it
listens on a free loopback port with TLS (its certificate in the work directory) and takes one user,
`loader`, with a random password.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("REDSHIFT_VENV") or ROOT / ".venv-redshift")
ROLE_ARN = "arn:aws:iam::123456789012:role/redshift-copy-fullstory"


@dataclass
class StandIn:
    port: int
    password: str
    cert: Path
    s3_env: dict[str, str]
    proc: subprocess.Popen[bytes]
    user: str = "loader"
    host: str = "127.0.0.1"

    def target_env(self, database: str, bucket: str, schema: str = "fullstory") -> dict[str, str]:
        """Environment for Meltano's target-redshift (and its S3 client) pointed at the stand-in."""
        return {**self.s3_env, "SSL_CERT_FILE": str(self.cert),  # trust the stand-in's TLS certificate
                "TARGET_REDSHIFT_HOST": self.host, "TARGET_REDSHIFT_PORT": str(self.port),
                "TARGET_REDSHIFT_USER": self.user, "TARGET_REDSHIFT_PASSWORD": self.password,
                "TARGET_REDSHIFT_DBNAME": database, "TARGET_REDSHIFT_S3_BUCKET": bucket,
                "TARGET_REDSHIFT_AWS_REDSHIFT_COPY_ROLE_ARN": ROLE_ARN,
                "TARGET_REDSHIFT_DEFAULT_TARGET_SCHEMA": schema}

    def target_config(self, database: str, bucket: str, schema: str = "fullstory") -> dict[str, object]:
        """The same as a target-redshift config file."""
        return {"host": self.host, "port": str(self.port), "user": self.user, "password": self.password,
                "dbname": database, "s3_bucket": bucket, "s3_region": self.s3_env.get("AWS_DEFAULT_REGION"),
                "aws_redshift_copy_role_arn": ROLE_ARN, "default_target_schema": schema,
                "remove_s3_files": True, "load_method": "upsert"}


@contextlib.contextmanager
def running(pg_port: int, s3_env: dict[str, str], work: Path, pg_host: str = "127.0.0.1") -> Iterator[StandIn]:
    """The stand-in, started in `work`; s3_env: AWS_ENDPOINT_URL and credentials of the S3 stand-in."""
    python = VENV / "bin" / "python"
    if not python.exists():
        raise RuntimeError(f"{python} missing: run `make redshift-venv`")
    work.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(16)
    log = work / "redshift-standin.log"
    env = {**os.environ, **s3_env, "REDSHIFT_STANDIN_PASSWORD": password, "PYTHONPATH": str(ROOT)}
    argv = [str(python), "-m", "standins.redshift", "--pg-host", pg_host, "--pg-port", str(pg_port),
            "--s3-endpoint", s3_env["AWS_ENDPOINT_URL"], "--tls-dir", str(work / "tls")]
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        port = _wait_port(log, proc)
        yield StandIn(port, password, work / "tls" / "cert.pem", s3_env, proc)
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        proc.kill()  # a no-op once it has exited
        proc.wait()


def _wait_port(log: Path, proc: subprocess.Popen[bytes], timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("listening on "):
                return int(line.rsplit(":", 1)[1])
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"Redshift stand-in did not start; {log}:\n{log.read_text(errors='replace')[-2000:]}")
