"""Secrets (issue #7): the API key and the signed download locations never appear in anything the
tap prints (stdout, stderr: logs and error messages), in its state, or in the files it writes.

Each case runs the tap CLI against an emulator whose key is distinctive, on a failing or passing
path, at INFO and at DEBUG verbosity, then scans every byte printed and written for the key (raw
and base64) and for every signed location token the emulator handed out.
"""

from __future__ import annotations

import base64
import json
import typing as t
from pathlib import Path

import pytest

from tests.tapio import TapRun, run_tap

KEY = "na1.SECRETkey-7d3f9b1e2c4a6058-DoNotLeak"
WRONG_KEY = "na1.WRONGkey-0c1d2e3f40516273-DoNotLeak"
START = "2024-01-01T00:00:00Z"
END = "2024-01-02T00:00:00Z"

# The SDK takes its log level from <PLUGIN>_LOGLEVEL / LOGLEVEL (the CLI has no --log-level), and
# a dictConfig from SINGER_SDK_LOG_CONFIG: the second one asks for urllib3's URL-bearing DEBUG lines.
DEBUG_ENV = {"LOGLEVEL": "DEBUG", "TAP_FULLSTORY_LOGLEVEL": "DEBUG"}
URLLIB3_DEBUG_CONFIG = """\
version: 1
disable_existing_loggers: false
loggers:
  urllib3: {level: DEBUG}
  urllib3.connectionpool: {level: DEBUG}
  requests: {level: DEBUG}
"""


def config(emu: t.Any, key: str = KEY, **extra: t.Any) -> dict[str, t.Any]:
    return {
        "api_key": key, "api_url": emu.base_url, "start_date": START, "end_date": END,
        "export_window": "6h", "poll_interval": 0.01, **extra,
    }


def signed_tokens(emu: t.Any) -> list[str]:
    """Every signed download token the emulator handed out in /search/v1/exports/{id}/results
    answers (the emulator keeps them to check downloads; read, not changed)."""
    return list(emu._tokens)


def needles(emu: t.Any, *keys: str) -> dict[str, str]:
    found = {}
    for key in keys:
        found[f"api key {key[:8]}…"] = key
        found[f"base64 of the api key {key[:8]}…"] = base64.b64encode(key.encode()).decode()
    for token in signed_tokens(emu):
        found[f"signed token {token[:6]}…"] = token
    return found


def scan(run: TapRun, emu: t.Any, *, keys: tuple[str, ...] = (KEY,), files: t.Iterable[Path] = ()) -> None:
    """Assert 0 occurrences of every secret in what was printed and written."""
    haystacks = {"stdout": run.stdout, "stderr": run.stderr}
    haystacks["state"] = json.dumps(run.states)
    for path in files:
        haystacks[str(path)] = path.read_bytes().decode("utf-8", errors="replace")
    secrets = needles(emu, *keys)
    leaks = [
        f"{what} in {where}"
        for what, secret in secrets.items()
        for where, text in haystacks.items()
        if secret in text
    ]
    assert leaks == [], leaks


@pytest.fixture(params=["info", "debug"])
def verbosity(request, tmp_path) -> dict[str, str]:
    if request.param == "info":
        return {}
    log_config = tmp_path / "logging.yml"
    log_config.write_text(URLLIB3_DEBUG_CONFIG)
    return {**DEBUG_ENV, "SINGER_SDK_LOG_CONFIG": str(log_config)}


CASES = [
    # (id, faults, expect success)
    ("clean", [], True),
    ("500_retries", [("results", "500", 2, 2, {}), ("download", "500", 2, 2, {})], True),
    ("429_download", [("download", "429_json", 1, 1, {"retry_after": 0})], True),
    ("expired_url", [("download", "expired", 2, 1, {})], True),
    ("reset_mid_download", [("download", "reset_after_bytes", 1, 2, {"bytes": 700})], True),
    ("reset_download_open", [("download", "reset", 3, 1, {})], True),
    ("truncated_gzip", [("download", "truncated_gzip", 2, 1, {})], True),
    ("401", [("create", "401", 2, 1, {})], False),
    ("download_exhausted", [("download", "503", 2, 100, {"retry_after": 0})], False),
    ("expired_forever", [("download", "expired", 1, 100, {})], False),
    ("malformed_row", [("download", "malformed_row", 2, 1, {"row": 3})], False),
]


@pytest.mark.parametrize(("faults", "succeeds"), [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_no_secret_in_output_or_state(make_emulator, verbosity, faults, succeeds) -> None:
    emu = make_emulator(api_key=KEY, start=START, days=1, events_per_hour=30, seed=21)
    for endpoint, kind, nth, times, params in faults:
        emu.add_fault(endpoint, kind, nth=nth, times=times, **params)
    run = run_tap(config(emu), env=verbosity)
    assert (run.returncode == 0) is succeeds, run.stderr[-3000:]
    assert signed_tokens(emu), "no signed URL was handed out: the scan would prove nothing"
    if verbosity:
        assert "DEBUG" in run.stderr  # the verbose run really was verbose
    scan(run, emu)


def test_wrong_key_is_not_echoed(make_emulator, verbosity) -> None:
    emu = make_emulator(api_key=KEY, start=START, days=1, events_per_hour=30, seed=22)
    run = run_tap(config(emu, key=WRONG_KEY), env=verbosity)
    assert run.returncode != 0
    assert "rejected the API key" in run.stderr
    scan(run, emu, keys=(KEY, WRONG_KEY))


def test_no_secret_in_bundles_run(make_emulator) -> None:
    """The legacy API authenticates its downloads: the key must not leak from those either."""
    emu = make_emulator(api_key=KEY, start=START, days=1, events_per_hour=30, seed=23, bundle_hours=12)
    emu.add_fault("get", "reset_after_bytes", nth=1, bytes=500)
    emu.add_fault("get", "500", nth=3)
    run = run_tap(config(emu, export_api="bundles"), env=DEBUG_ENV)
    assert run.returncode == 0, run.stderr[-3000:]
    scan(run, emu)


def test_no_secret_in_batch_files(make_emulator, tmp_path) -> None:
    """BATCH mode (JSONL day files): the files, their manifests and the state are scanned too."""
    emu = make_emulator(api_key=KEY, start=START, days=2, events_per_hour=30, seed=24)
    emu.add_fault("download", "expired", nth=2)
    emu.add_fault("download", "reset_after_bytes", nth=4, bytes=600)
    root = tmp_path / "batches"
    root.mkdir()
    cfg = config(emu, end_date="2024-01-03T00:00:00Z", batch_config={
        "encoding": {"format": "jsonl", "compression": "none"},
        "storage": {"root": f"file://{root}", "prefix": "fs-"},
    })
    run = run_tap(cfg, env=DEBUG_ENV)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.batches, "no BATCH message: batch mode did not run"
    files = [p for p in root.rglob("*") if p.is_file()]
    assert files
    scan(run, emu, files=files)


def _decoded(path: Path) -> str:
    """A columnar file as text: its schema with metadata and every value (compressed pages would
    hide a secret from a scan of the raw bytes)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.suffix == ".parquet":
        table = pq.read_table(path)
        meta = pq.read_metadata(path)
        extra = [str(meta.metadata), str(meta.created_by)]
    else:
        with pa.memory_map(str(path)) as source:
            reader = pa.ipc.open_file(source)
            table = reader.read_all()
            extra = [str(reader.schema.metadata)]
    return "\n".join([str(table.schema), str(table.schema.metadata), *extra,
                      json.dumps(table.to_pylist(), default=str)])


@pytest.mark.parametrize(("fmt", "compression"), [("parquet", "zstd"), ("arrow", "zstd")])
def test_no_secret_in_parquet_or_arrow_batch_files(make_emulator, tmp_path, fmt, compression) -> None:
    """The columnar day files, their values decoded, their schema and file metadata scanned; a
    quarantined row's file beside them too."""
    emu = make_emulator(api_key=KEY, start=START, days=1, events_per_hour=30, seed=25)
    emu.add_fault("download", "expired", nth=2)
    emu.add_fault("download", "raw_row", nth=3, times=1, row=4, raw=b'{"EventStart": <not json>}')
    root = tmp_path / "batches"
    cfg = config(emu, on_bad_row="quarantine", batch_config={
        "encoding": {"format": fmt, "compression": compression},
        "storage": {"root": root.as_uri(), "prefix": "fs-"},
    })
    run = run_tap(cfg, env=DEBUG_ENV)
    assert run.returncode == 0, run.stderr[-3000:]
    files = sorted(p for p in root.rglob("*") if p.is_file())
    assert {p.suffix for p in files} == {f".{fmt}", ".jsonl"}, files
    decoded = tmp_path / "decoded.txt"
    decoded.write_text("\n".join(_decoded(p) for p in files if p.suffix == f".{fmt}"))
    assert decoded.read_text().count('"EventId":') == len(emu.expected_rows(START, END)) > 0
    scan(run, emu, files=[*files, decoded])
