"""The Redshift stand-in (standins/redshift/), one emulated feature per test (issue #19).

Each test runs the same Redshift SQL twice: through the stand-in, where it must do what Redshift documents, and
against the plain PostgreSQL 15 behind it, where it must not (otherwise the stand-in would emulate nothing).
Clients: psycopg (in-process) and, where the target's own libraries matter, redshift_connector and
sqlalchemy-redshift from .venv-redshift (tests/redshift_client.py).
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from standins.redshift import launch

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "fs-redshift-stage"
ROLE = "IAM_ROLE 'arn:aws:iam::123456789012:role/copy'"

pytestmark = pytest.mark.services


@pytest.fixture(scope="session")
def redshift(postgres, s3) -> Iterator[launch.StandIn]:
    """The stand-in on a free port, in front of the session's PostgreSQL and moto S3."""
    s3["create_bucket"](BUCKET)
    work = Path(tempfile.mkdtemp(prefix="tap-fullstory-redshift-"))
    try:
        with launch.running(postgres.port, s3["env"], work) as standin:
            yield standin
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def rs_db(postgres) -> Iterator[str]:
    """A fresh database (Redshift's dbname) for one test."""
    name = postgres.create_database().rsplit("/", 1)[1]
    yield name
    postgres.drop_database(name)


def through(standin: launch.StandIn, db: str) -> Any:
    import psycopg

    return psycopg.connect(host=standin.host, port=standin.port, dbname=db, user=standin.user,
                           password=standin.password, sslmode="require", autocommit=True)


def plain(postgres, db: str) -> Any:
    import psycopg

    return psycopg.connect(postgres.url_for(db), autocommit=True)


def run_all(con: Any, *sql: str) -> list[Any]:
    """Each statement's rows (or the error text): one list entry per statement."""
    out: list[Any] = []
    for s in sql:
        try:
            cur = con.execute(s)
            out.append(cur.fetchall() if cur.description else cur.statusmessage)
        except Exception as exc:
            out.append(f"ERROR {exc}")
    return out


def client(standin: launch.StandIn, connect: dict[str, Any],
           steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """tests/redshift_client.py in .venv-redshift, trusting the stand-in's TLS certificate."""
    python = launch.VENV / "bin" / "python"
    proc = subprocess.run([str(python), str(ROOT / "tests" / "redshift_client.py")],
                          input=json.dumps({"connect": connect, "steps": steps}), capture_output=True,
                          text=True, timeout=120,
                          env={**os.environ, "SSL_CERT_FILE": str(standin.cert)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def put(s3: dict[str, Any], key: str, body: bytes) -> None:
    import s3fs

    s3fs.S3FileSystem(**s3["storage_options"]).pipe(f"{BUCKET}/{key}", body)


# --- start-up, authentication, TLS ----------------------------------------------------------------


def test_startup_auth_and_tls(redshift, rs_db, postgres) -> None:
    conn = {"host": redshift.host, "port": redshift.port, "database": rs_db, "user": redshift.user,
            "password": redshift.password}
    tls = client(redshift, {**conn, "ssl": True}, [{"sql": "select version()"}])  # certificate verified
    plain_tcp = client(redshift, {**conn, "ssl": False}, [{"sql": "select current_database()"}])
    wrong = client(redshift, {**conn, "ssl": False, "password": "wrong"}, [])
    pg = client(redshift, {**conn, "ssl": False, "port": postgres.port, "user": "postgres"}, [])
    assert "Redshift" in tls[0]["rows"][0][0]
    assert plain_tcp[0]["rows"] == [[rs_db]]
    assert 'password authentication failed for user "loader"' in wrong[0]["error"]
    assert redshift.password not in json.dumps(wrong)
    # PostgreSQL refuses redshift_connector's start-up packet outright
    assert 'unrecognized configuration parameter "client_protocol_version"' in pg[0]["error"]


# --- catalogue: sqlalchemy-redshift's reflection ----------------------------------------------------


def test_catalogue_reflection(redshift, rs_db, postgres) -> None:
    with through(redshift, rs_db) as con:
        run_all(con, "create schema s", "create table s.t (id varchar(12) not null primary key, "
                                        "obj super, ts datetime, n bigint, x double precision)")
    conn = {"host": redshift.host, "port": redshift.port, "database": rs_db, "user": redshift.user,
            "password": redshift.password, "ssl": False}
    pg_url = f"redshift+psycopg2://postgres@127.0.0.1:{postgres.port}/{rs_db}?sslmode=disable"
    got = client(redshift, conn, [{"reflect": ["s", "t"]}, {"reflect": ["s", "t"], "url": pg_url}])
    assert got[0]["columns"] == [["id", "VARCHAR(12)"], ["obj", "SUPER"], ["ts", "TIMESTAMP"],
                                 ["n", "BIGINT"], ["x", "DOUBLE_PRECISION"]]
    assert "attencodingtype" in got[1]["error"] or "does not exist" in got[1]["error"]


# --- identifiers, VARCHAR bytes, SUPER --------------------------------------------------------------


def test_identifiers_fold_to_lower_case(redshift, rs_db, postgres) -> None:
    sql = ('create table "MiXed" ("ColA" int)', 'insert into "MIXED" ("COLA") values (1)',
           "select cola from mixed")
    with through(redshift, rs_db) as con:
        assert run_all(con, *sql)[2] == [(1,)]
    other = plain(postgres, rs_db)
    assert str(run_all(other, 'drop table mixed', *sql)[3]).startswith("ERROR")


def test_varchar_counts_bytes(redshift, rs_db, postgres) -> None:
    sql = ("create table v (a varchar(4), b varchar, c varchar(max))", "insert into v (a) values ('éé')",
           "insert into v (a) values ('ééé')",  # 3 characters, 6 bytes
           "select format_type(atttypid, atttypmod) from pg_attribute where attrelid = 'v'::regclass "
           "and attnum > 0 order by attnum", "create table w (a varchar(65536))")
    with through(redshift, rs_db) as con:
        got = run_all(con, *sql)
    assert got[1] == "INSERT 0 1" and got[2].startswith("ERROR") and "rs_bytes_a" in got[2]
    assert [r[0] for r in got[3]] == ["character varying(4)", "character varying(256)",
                                      "character varying(65535)"]
    assert "cannot exceed 65535" in got[4]
    with plain(postgres, rs_db) as con:
        assert run_all(con, "create table v2 (a varchar(4))", "insert into v2 values ('ééé')")[1] == "INSERT 0 1"


def test_super_navigation_and_json_functions(redshift, rs_db, postgres) -> None:
    doc = '{"plan": "pro", "n": 3, "Mixed": "M", "a": {"b": [1, 2]}}'
    sql = ("create table j (id int, cv super)", f"insert into j values (1, json_parse('{doc}'))",
           "select cv.plan, cv.n::int + 1, cv.a.b, cv.mixed from j",
           "select json_extract_path_text(json_serialize(cv), 'a', 'b') from j",
           "set enable_case_sensitive_identifier to true", 'select cv."Mixed", j.cv."plan" from j')
    with through(redshift, rs_db) as con:
        got = run_all(con, *sql)
    assert got[2] == [("pro", 4, "[1, 2]", None)]  # keys fold to lower case like any identifier
    assert got[3] == [("[1, 2]",)]
    assert got[5] == [("M", "pro")]
    with plain(postgres, rs_db) as con:
        assert 'type "super" does not exist' in run_all(con, *sql)[0]


# --- MERGE ... REMOVE DUPLICATES, temp tables -------------------------------------------------------


def test_merge_remove_duplicates_from_a_temp_table(redshift, rs_db, postgres) -> None:
    sql = ("create table t (k varchar(8), v int)", "insert into t values ('a', 1), ('b', 2)",
           "create temporary table s (k varchar(8), v int)", "insert into s values ('b', 20), ('c', 30)",
           "merge into t using s on s.k = t.k remove duplicates", "select k, v from t order by k")
    with through(redshift, rs_db) as con:
        got = run_all(con, *sql)
    assert got[4] == "MERGE 2" and got[5] == [("a", 1), ("b", 20), ("c", 30)]
    with plain(postgres, rs_db) as con:
        assert run_all(con, *sql)[4].startswith("ERROR")


# --- COPY FROM 's3://...' ---------------------------------------------------------------------------


COPY = ("COPY c (id, s, t, obj) FROM 's3://" + BUCKET + "/copy/part' " + ROLE +
        " {opts} GZIP CSV")
TARGET_OPTS = ("EMPTYASNULL BLANKSASNULL TRIMBLANKS TRUNCATECOLUMNS DATEFORMAT 'auto' TIMEFORMAT 'auto' "
               "COMPUPDATE OFF STATUPDATE OFF")


def test_copy_from_s3_with_the_targets_options(redshift, rs_db, postgres, s3) -> None:
    put(s3, "copy/part-0.csv.gz", gzip.compress(
        b'1,"",2024-01-01 00:00:00+00:00,"{""k"": ""v""}"\n2,"  ",,\n'))
    put(s3, "copy/part-1.csv.gz", gzip.compress("3,ééé  ,2024-01-02T03:04:05.5Z,[1]\n".encode()))
    put(s3, "other/x.csv.gz", gzip.compress(b"9,not under the prefix,,\n"))
    create = "create table c (id int, s varchar(5), t timestamp, obj super)"
    with through(redshift, rs_db) as con:
        got = run_all(con, create, COPY.format(opts=TARGET_OPTS),
                      "select id, s, t::text, obj.k from c order by id", "truncate c",
                      COPY.format(opts="DATEFORMAT 'auto'"), "select id, s from c order by id",
                      COPY.format(opts="").replace("copy/part", "copy/none"),
                      COPY.format(opts="").replace(ROLE, "IAM_ROLE 'not-a-role'"),
                      COPY.format(opts="MAXERROR 10"))
    assert got[1] == "COPY 3"  # both objects under the prefix, in key order; not the other key
    # empty and blank -> NULL, trailing blanks trimmed, 6 bytes cut to 5 without splitting a character
    assert got[2] == [(1, None, "2024-01-01 00:00:00", "v"), (2, None, None, None),
                      (3, "éé", "2024-01-02 03:04:05.5", None)]
    assert "String length exceeds DDL length" in got[4]  # no TRUNCATECOLUMNS: the load fails
    assert got[5] == []  # ... and loads nothing
    assert "S3 prefix 'copy/none' does not exist" in got[6]
    assert "not a valid IAM role ARN" in got[7]
    assert "MAXERROR is not emulated" in got[8]
    with plain(postgres, rs_db) as con:
        assert run_all(con, create, COPY.format(opts=TARGET_OPTS))[1].startswith("ERROR")
