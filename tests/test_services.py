"""Smoke tests: each local service fixture (tests/services.py) starts and answers a real client."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from typing import Any

import pytest

pytestmark = pytest.mark.services


def test_postgres_fresh_database(postgres, postgres_db: str) -> None:
    import psycopg

    assert postgres.url.endswith("/warehouse")
    with psycopg.connect(postgres_db, autocommit=True) as con:
        con.execute("CREATE TABLE events (id text PRIMARY KEY, custom_vars jsonb)")
        con.execute(
            "INSERT INTO events VALUES (%s, %s::jsonb)", ("e1", json.dumps({"plan": "pro", "n": 3}))
        )
        row = con.execute(
            "SELECT custom_vars->>'plan', jsonb_typeof(custom_vars) FROM events"
        ).fetchone()
    assert row == ("pro", "object")
    # the per-test database is separate from the shared 'warehouse' one
    out = subprocess.run(
        ["psql", "-X", "-qtA", postgres.url, "-c", "SELECT to_regclass('public.events') IS NULL"],
        check=True,
        capture_output=True,
        text=True,
    )
    assert out.stdout.strip() == "t"


def test_s3_put_and_list(s3: dict[str, Any]) -> None:
    import s3fs

    bucket = s3["create_bucket"]("fs-smoke")
    fs = s3fs.S3FileSystem(**s3["storage_options"])
    with fs.open(f"{bucket}/exports/part-0.jsonl.gz", "wb") as f:
        f.write(b'{"event_id": "e1"}\n')
    assert fs.ls(f"{bucket}/exports") == [f"{bucket}/exports/part-0.jsonl.gz"]
    assert fs.cat(f"{bucket}/exports/part-0.jsonl.gz") == b'{"event_id": "e1"}\n'


def test_gcs_write_and_read(gcs: dict[str, Any]) -> None:
    # gcsfs picks its class from GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT at import time; use the core class in-process.
    from gcsfs.core import GCSFileSystem

    bucket = gcs["create_bucket"]("fs-smoke")
    fs = GCSFileSystem(**gcs["storage_options"])
    fs.pipe(f"{bucket}/exports/a.json", b'{"ok": true}')
    assert fs.cat(f"{bucket}/exports/a.json") == b'{"ok": true}'
    assert fs.ls(f"{bucket}/exports") == [f"{bucket}/exports/a.json"]
    assert (
        gcs["root"] / bucket / "exports" / "a.json"
    ).exists()  # what bqemulator's gs:// loads read


BQ_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from google.cloud import bigquery
    c = bigquery.Client(project=sys.argv[1])   # env: BIGQUERY_EMULATOR_HOST + fake service account
    c.create_dataset("services_smoke", exists_ok=True)  # its own dataset: other tests share the emulator
    t = c.create_table(bigquery.Table(f"{sys.argv[1]}.services_smoke.events", schema=[
        bigquery.SchemaField("event_id", "STRING"),
        bigquery.SchemaField("custom_vars", "JSON"),
        bigquery.SchemaField("tags", "STRING", mode="REPEATED"),
    ]))
    errors = c.insert_rows_json(t, [
        {"event_id": "e1", "custom_vars": {"plan": "pro", "n": 3}, "tags": ["x", "y"]},
        {"event_id": "e2", "custom_vars": {"plan": "free", "n": 1}, "tags": []},
    ])
    assert not errors, errors
    rows = c.query(
        "SELECT event_id, JSON_VALUE(custom_vars, '$.plan') AS plan, ARRAY_LENGTH(tags) AS n_tags "
        "FROM services_smoke.events ORDER BY event_id"
    ).result()
    print(json.dumps([dict(r.items()) for r in rows]))
    """
)


def test_bigquery_create_table_and_query(bigquery: dict[str, Any]) -> None:
    out = subprocess.run(
        [bigquery["python"], "-c", BQ_SCRIPT, bigquery["project"]],
        env={**os.environ, **bigquery["env"]},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [
        {"event_id": "e1", "plan": "pro", "n_tags": 2},
        {"event_id": "e2", "plan": "free", "n_tags": 0},
    ]
