"""Fast Singer output: orjson serialisation, buffered stdout, and a direct RECORD path.

The SDK's default writer flushes stdout after every message and conforms each record against the
schema; at hundreds of thousands of events per export that dominates the run. Records built from
the field catalogue are already JSON-native, so when no stream map or flattening is configured
they are written straight to a buffered stdout. STATE (and every other message) flushes first,
so a STATE line is never seen before the records it covers.
"""

from __future__ import annotations

import datetime as dt
import decimal
import sys
import typing as t

import orjson
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.singerlib.encoding.simple import SimpleSingerWriter

_OPTIONS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS


def _default(value: t.Any) -> t.Any:
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _stdout() -> t.BinaryIO:
    """The binary stdout, or an adapter when stdout was replaced by a text-only stream."""
    buffer = getattr(sys.stdout, "buffer", None)
    return buffer if buffer is not None else _TextAdapter(sys.stdout)  # type: ignore[return-value]


class _TextAdapter:
    def __init__(self, text: t.TextIO) -> None:
        self.text = text

    def write(self, data: bytes) -> None:
        self.text.write(data.decode())

    def flush(self) -> None:
        self.text.flush()


class FastSingerWriter(SimpleSingerWriter):
    """Writes messages with orjson to a buffered binary stdout; flushes on everything but RECORD."""

    def serialize_message(self, message: t.Any) -> str:
        return orjson.dumps(message.to_dict(), default=_default).decode()

    def write_message(self, message: t.Any) -> None:
        out = _stdout()
        out.write(orjson.dumps(message.to_dict(), default=_default, option=_OPTIONS))
        if getattr(message, "type", None) != "RECORD":
            out.flush()

    @staticmethod
    def write_records(
        stream: str, records: t.Iterable[dict], extracted: str, drop: t.Sequence[str] = ()
    ) -> int:
        """Write RECORD lines without building message objects (the hot path); returns the count."""
        out = _stdout()
        dumps = orjson.dumps
        head = b'{"type":"RECORD","stream":' + dumps(stream) + b',"record":'
        tail = b',"time_extracted":' + dumps(extracted) + b"}\n"
        count = 0
        for record in records:
            for name in drop:
                record.pop(name, None)
            out.write(head + dumps(record, default=_default) + tail)
            count += 1
        return count


def fast_path_allowed(stream: t.Any) -> bool:
    """True when the SDK's per-record work would change nothing: the default map, no flattening,
    and our writer in place."""
    maps = stream.stream_maps
    return (
        isinstance(stream._tap.message_writer, FastSingerWriter)
        and len(maps) == 1
        and type(maps[0]) is SameRecordTransform
        and maps[0].stream_alias == stream.name
        and not maps[0].flattening_enabled
    )


def utc_now_text() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")
