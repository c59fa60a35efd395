"""Start bqemulator 1.4.0 offline. In-process patches only (nothing on disk is edited):

1. skip INSTALL spatial / avro (downloaded at start-up -> fails offline; GEOGRAPHY and Avro loads are lost);
2. gunzip gzip-compressed load-job uploads (otherwise 'Malformed JSON' or a 0-row load);
3. store dict/list values for JSON columns in insertAll with json.dumps (otherwise Python repr -> HTTP 500).

usage (same arguments as `bqemulator`):
  BQEMU_GCS_LOCAL_ROOT=<fake-gcs filesystem root> OTEL_SDK_DISABLED=true \
    .venv-bq/bin/python standins/bqemu_offline.py start --rest-port 19050 --grpc-port 19060 --project test-proj
"""

import gzip
import json
import sys

import bqemulator.api.routes.upload as upload
import bqemulator.storage.arrow_bridge as ab
import bqemulator.storage.engine as engine
import pyarrow as pa

engine.DuckDBEngine._load_spatial = lambda self: None
engine.DuckDBEngine._load_format_extensions = lambda self: None

_orig_run_load = upload._run_load


async def _run_load(*, media_path, **kw):
    with open(media_path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        with gzip.open(media_path, "rb") as src:
            data = src.read()
        with open(media_path, "wb") as dst:
            dst.write(data)
    return await _orig_run_load(media_path=media_path, **kw)


upload._run_load = _run_load

_orig_coerce = ab._coerce_to_arrow_value


def _coerce(value, arrow_type, *, field=None):
    if isinstance(value, (dict, list)) and (
        pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
    ):
        return json.dumps(value)
    return _orig_coerce(value, arrow_type, field=field)


ab._coerce_to_arrow_value = _coerce

from bqemulator.cli import main  # noqa: E402

sys.exit(main())
