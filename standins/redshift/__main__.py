"""`python -m standins.redshift --pg-port N --s3-endpoint URL [--port 0]`: serve until killed.

Prints `listening on 127.0.0.1:<port>` once it accepts connections (port 0 picks a free one). The password
comes from REDSHIFT_STANDIN_PASSWORD (never on the command line). With --tls-dir it offers TLS, as Redshift does
(redshift_connector's SQLAlchemy engine requires it): a self-signed certificate for 127.0.0.1 is made there with
openssl; clients trust it through SSL_CERT_FILE=<dir>/cert.pem.
"""

from __future__ import annotations

import argparse
import os
import socket
import ssl
import subprocess
import sys
from pathlib import Path

from standins.redshift.session import Config, serve


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m standins.redshift", description=__doc__)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--pg-host", default="127.0.0.1")
    p.add_argument("--pg-port", type=int, required=True)
    p.add_argument("--user", default="loader")
    p.add_argument("--s3-endpoint", required=True)
    p.add_argument("--tls-dir", type=Path)
    args = p.parse_args()
    password = os.environ.get("REDSHIFT_STANDIN_PASSWORD")
    if not password:
        sys.exit("REDSHIFT_STANDIN_PASSWORD is not set")
    tls = _tls(args.tls_dir) if args.tls_dir else None
    listener = socket.create_server(("127.0.0.1", args.port))
    print(f"listening on 127.0.0.1:{listener.getsockname()[1]}", flush=True)
    serve(listener, Config(args.pg_host, args.pg_port, args.user, password, args.s3_endpoint.rstrip("/"), tls))


def _tls(folder: Path) -> ssl.SSLContext:
    cert, key = folder / "cert.pem", folder / "key.pem"
    if not cert.exists():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                        str(cert), "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


if __name__ == "__main__":
    main()
