"""One client connection of the Redshift stand-in: a Redshift front on a PostgreSQL session.

The client (redshift_connector, psycopg, psql) authenticates against the stand-in (TLS if asked, MD5, as a
Redshift cluster offers them); the stand-in then opens a PostgreSQL session for it and forwards the wire protocol
both ways, message by message, in one thread (pygwire decodes and encodes the messages it changes; the others
pass as they are). What it changes on the way:

- client -> PostgreSQL: the SQL of every Query and Parse (rewrite.py);
- PostgreSQL -> client: the server version (Redshift's 8.0.2), SUPER's type OID (4000) for jsonb columns;
- a `COPY ... FROM 's3://...'` statement runs as `COPY ... FROM STDIN`: when PostgreSQL asks for the data, the
  stand-in sends the converted S3 objects (copy_s3.py) itself, and the client only sees `COPY n`. Meanwhile it
  holds back the client's next messages (PostgreSQL would take a Sync sent during the copy for part of it).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import select
import socket
import ssl
import struct
import threading
import traceback
from dataclasses import dataclass
from typing import Any

from pygwire import BackendConnection, FrontendConnection
from pygwire.messages import (
    AuthenticationMD5Password,
    AuthenticationOk,
    Bind,
    Close,
    CopyData,
    CopyDone,
    CopyFail,
    ErrorResponse,
    Execute,
    FieldDescription,
    ParameterStatus,
    Parse,
    Query,
    ReadyForQuery,
    RowDescription,
    SSLRequest,
    SSLResponse,
    StartupMessage,
)

from standins.redshift import catalog
from standins.redshift.copy_s3 import CopySpec
from standins.redshift.rewrite import Columns, Context, rewrite

JSONB_OID, SUPER_OID = 3802, 4000
SERVER_VERSION = "8.0.2"


@dataclass
class Config:
    pg_host: str
    pg_port: int
    user: str
    password: str
    s3_endpoint: str
    tls: ssl.SSLContext | None = None


_setup_done: set[str] = set()
_setup_lock = threading.Lock()


def _fatal(code: str, message: str) -> bytes:
    return ErrorResponse(fields={"S": "FATAL", "V": "FATAL", "C": code, "M": message}).to_wire()


class Session:
    def __init__(self, client: socket.socket, cfg: Config) -> None:
        self.client, self.cfg = client, cfg
        self.front = BackendConnection(strict=False)  # decodes what the client sends
        self.back = FrontendConnection(strict=False)  # decodes what PostgreSQL sends
        self.pg: socket.socket | None = None
        self.early = b""  # client bytes received with the password
        self.s3: Any = None  # boto3 S3 client, made at the first COPY
        self.side: Any = None  # psycopg connection for catalogue look-ups (permanent tables)
        self.database = ""
        self.pending: CopySpec | None = None
        self.error_since_sync = False
        self.ctx = Context(table_columns=self._table_columns, super_columns=self._super_columns)
        self.statements: dict[str, CopySpec | None] = {}
        self.portals: dict[str, CopySpec | None] = {}

    # --- start-up -------------------------------------------------------------------------------------------------

    def _recv(self, conn: Any, sock: socket.socket) -> list[Any]:
        while True:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("peer closed")
            msgs = list(conn.receive(data))
            if msgs:
                return msgs

    def _startup(self) -> bool:
        while True:
            (msg, *_) = self._recv(self.front, self.client)
            if isinstance(msg, SSLRequest):  # Redshift offers TLS; redshift_connector's engine insists on it
                if self.cfg.tls is None:
                    self.client.sendall(SSLResponse(accepted=False).to_wire())
                    self.front = BackendConnection(strict=False)
                    continue
                self.client.sendall(SSLResponse(accepted=True).to_wire())
                self.client = self.cfg.tls.wrap_socket(self.client, server_side=True)
                self.front = BackendConnection(strict=False)
                continue
            if isinstance(msg, StartupMessage):
                break
            return False
        params = msg.params
        user, self.database = params.get("user", ""), params.get("database") or params.get("user", "")
        salt = os.urandom(4)
        self.client.sendall(self.front.send(AuthenticationMD5Password(salt=salt)))
        got = self._password()
        inner = hashlib.md5((self.cfg.password + self.cfg.user).encode()).hexdigest()
        want = "md5" + hashlib.md5(inner.encode() + salt).hexdigest()
        if user != self.cfg.user or got != want:
            self.client.sendall(_fatal("28P01", f'password authentication failed for user "{user}"'))
            return False
        self.pg = socket.create_connection((self.cfg.pg_host, self.cfg.pg_port))
        # enable_nestloop off: the target's temp and new tables have no statistics, and PostgreSQL's guess
        # of one row each made its MERGE a nested loop, quadratic in the batch (Redshift plans its own way).
        params = {"user": "postgres", "database": self.database, "enable_nestloop": "off"}
        self.pg.sendall(self.back.send(StartupMessage(params=params)))
        out = bytearray(AuthenticationOk().to_wire())
        while True:
            for m in self._recv(self.back, self.pg):
                if isinstance(m, AuthenticationOk):
                    continue
                if isinstance(m, ErrorResponse):
                    self.client.sendall(bytes(out) + m.to_wire())
                    return False
                if isinstance(m, ParameterStatus) and m.name == "server_version":
                    m = ParameterStatus(name="server_version", value=SERVER_VERSION)
                if isinstance(m, ReadyForQuery):
                    self._setup_database()
                    self.client.sendall(bytes(out) + m.to_wire())
                    return True
                out += m.to_wire()

    def _password(self) -> str:
        """The PasswordMessage's text. Read here, not by pygwire: redshift_connector follows it with a Flush,
        which pygwire refuses before authentication is over. Later messages go to a READY-phase decoder."""
        buf = b""
        while not (frames := split_frames(buf))[0]:
            data = self.client.recv(65536)
            if not data:
                raise ConnectionError("client closed during authentication")
            buf += data
        (kind, payload, _), *rest = frames[0]
        # Flush: nothing to flush yet. Anything else is a query, for the forwarding loop.
        self.early = b"".join(w for k, _, w in rest if k != b"H") + frames[1]
        return payload.rstrip(b"\x00").decode(errors="replace") if kind == b"p" else ""

    def _side(self) -> Any:
        if self.side is None:
            import psycopg

            self.side = psycopg.connect(host=self.cfg.pg_host, port=self.cfg.pg_port, user="postgres",
                                        dbname=self.database, autocommit=True)
        return self.side

    def _setup_database(self) -> None:
        with _setup_lock:
            if self.database not in _setup_done:
                self._side().execute(catalog.SETUP_SQL)
                _setup_done.add(self.database)

    def _table_columns(self, ref: str) -> Columns:
        rows = self._side().execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = to_regclass(%s) "
            "AND attnum > 0 AND NOT attisdropped ORDER BY attnum", (ref,)).fetchall()
        return [(str(a), str(b)) for a, b in rows]

    def _super_columns(self) -> set[str]:
        rows = self._side().execute(
            "SELECT DISTINCT a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE a.atttypid = 'jsonb'::regtype "
            "AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'").fetchall()
        return {str(r[0]) for r in rows}

    # --- the forwarding loop ---------------------------------------------------------------------------------------
    # One thread per session: with TLS, the client socket must not be read and written by two threads at once.

    def _loop(self) -> None:
        assert self.pg is not None
        client_buf, pg_buf = self.early, b""
        while True:
            rest = self._from_client(client_buf)
            if rest is None:
                return
            client_buf = rest
            waiting = [self.pg] if self.pending is not None else [self.pg, self.client]
            # TLS may hold decrypted client bytes that select() cannot see
            ready = [self.client] if self._tls_pending() else select.select(waiting, [], [])[0]
            if self.client in ready:
                data = self.client.recv(65536)
                if not data:
                    return
                client_buf += data
            if self.pg in ready:
                data = self.pg.recv(65536)
                if not data:
                    return
                pg_buf = self._from_pg(pg_buf + data)

    def _tls_pending(self) -> bool:
        return isinstance(self.client, ssl.SSLSocket) and self.client.pending() > 0 and self.pending is None

    def _from_pg(self, buf: bytes) -> bytes:
        frames, rest = split_frames(buf)
        out = bytearray()
        for kind, payload, wire in frames:
            if kind == b"G" and self.pending is not None:  # CopyInResponse: the stand-in feeds it
                self._feed(self.pending)
                self.pending = None
                continue
            if kind == b"E":
                self.error_since_sync, self.pending = True, None  # the COPY will not start
            elif kind == b"Z":
                self.error_since_sync, self.pending = False, None
            elif kind == b"T":
                desc = RowDescription.decode(memoryview(payload))
                if any(f.type_oid == JSONB_OID for f in desc.fields):
                    wire = RowDescription(fields=[_super(f) for f in desc.fields]).to_wire()
            out += wire
        if out:
            self.client.sendall(out)
        return rest

    def _feed(self, spec: CopySpec) -> None:
        assert self.pg is not None
        try:
            if self.s3 is None:
                import boto3

                self.s3 = boto3.client("s3", endpoint_url=self.cfg.s3_endpoint)
            for chunk in spec.feed(self.s3):
                self.pg.sendall(CopyData(data=chunk).to_wire())
            self.pg.sendall(CopyDone().to_wire())
        except Exception as exc:  # any failure fails the COPY, with its cause
            self.pg.sendall(CopyFail(error_message=str(exc) or type(exc).__name__).to_wire())

    def _from_client(self, buf: bytes) -> bytes | None:
        """Forward the complete client messages in `buf`; stop after one that starts an S3 COPY (the rest waits
        until PostgreSQL has had the data: it would take a Sync sent now for part of the copy)."""
        assert self.pg is not None
        out = bytearray()
        while self.pending is None:
            frames, _ = split_frames(buf, limit=1)
            if not frames:
                break
            kind, payload, wire = frames[0]
            buf = buf[len(wire):]
            start: CopySpec | None = None
            view = memoryview(payload)
            if kind == b"X":  # Terminate
                self.pg.sendall(bytes(out) + wire)
                return None
            if kind == b"Q":
                rw = rewrite(Query.decode(view).query_string, self.ctx)
                wire, start = Query(query_string=rw.sql).to_wire(), rw.copy
            elif kind == b"P":
                m = Parse.decode(view)
                rw = rewrite(m.query, self.ctx)
                self.statements[m.statement] = rw.copy
                wire = Parse(statement=m.statement, query=rw.sql, param_types=m.param_types).to_wire()
            elif kind == b"B":
                bind = Bind.decode(view)
                self.portals[bind.portal] = self.statements.get(bind.statement)
            elif kind == b"E":
                start = self.portals.get(Execute.decode(view).portal)
            elif kind == b"C":
                close = Close.decode(view)
                (self.statements if close.kind == "S" else self.portals).pop(close.name, None)
            out += wire
            if start is not None and not self.error_since_sync:  # after an error PostgreSQL skips to Sync
                self.pending = start
        if out:
            self.pg.sendall(out)
        return buf

    def run(self) -> None:
        try:
            if not self._startup():
                return
            self._loop()
        except (OSError, ConnectionError):
            pass
        except Exception:  # a stand-in bug: show it, drop the connection
            traceback.print_exc()
        finally:
            if self.pg is not None:
                _close(self.pg)
            _close(self.client)
            if self.side is not None:
                self.side.close()


def split_frames(buf: bytes, limit: int = 0) -> tuple[list[tuple[bytes, bytes, bytes]], bytes]:
    """Complete messages in `buf` (at most `limit` if set) as (type byte, payload, whole message), and the rest."""
    frames: list[tuple[bytes, bytes, bytes]] = []
    at = 0
    while len(buf) - at >= 5 and not (limit and len(frames) >= limit):
        size = struct.unpack_from("!I", buf, at + 1)[0] + 1
        if len(buf) - at < size:
            break
        frames.append((buf[at:at + 1], buf[at + 5:at + size], buf[at:at + size]))
        at += size
    return frames, buf[at:]


def _super(f: FieldDescription) -> FieldDescription:
    if f.type_oid == JSONB_OID:
        f.type_oid = SUPER_OID
    return f


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def serve(listener: socket.socket, cfg: Config) -> None:
    """Serve each connection in its own thread, until the process ends."""
    while True:
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=Session(conn, cfg).run, daemon=True).start()
