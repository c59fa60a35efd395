"""Every private singer-sdk API the tap relies on, in one place.

The bookmark logic needs a few of the SDK's private stream methods (the SDK has no public way to
move a bookmark per export window, or to write STATE between BATCH messages), and the direct
RECORD path needs to know that the SDK's per-record work would change nothing. Each seam below is
one small function with a contract test in `tests/test_sdk_seams.py`, so that a singer-sdk
upgrade that changes one fails a test instead of silently breaking a bookmark. singer-sdk is
pinned to ~=0.54.9 for this reason.
"""

from __future__ import annotations

import enum
import typing as t

from singer_sdk import metrics
from singer_sdk.mapper import SameRecordTransform

if t.TYPE_CHECKING:
    from singer_sdk import Stream
    from singer_sdk.helpers._batch import (  # noqa: F401 - re-exported for typing
        BaseBatchFileEncoding,
        BatchConfig,
        StorageTarget,
    )
    from singer_sdk.singerlib.encoding.base import GenericSingerWriter


def write_starting_value(stream: Stream, context: t.Any) -> None:
    """Record the run's starting bookmark (state, else start_date) so that
    `get_starting_timestamp` works outside the SDK's record loop (our day batches)."""
    stream._write_starting_replication_value(context)


def move_bookmark(stream: Stream, value: str, context: t.Any) -> None:
    """Set the stream's bookmark to `value` and mark the state as not yet written (the SDK
    itself marks it so only when it writes a RECORD or BATCH)."""
    assert stream.replication_key is not None
    stream._increment_stream_state({stream.replication_key: value}, context=context)
    stream.state_manager.is_flushed = False


def write_state(stream: Stream) -> None:
    """Write a STATE message now, unless nothing moved since the last one."""
    stream._write_state_message()


def finalize_state(stream: Stream) -> None:
    """Promote the stream's state to final (drops interim keys such as the signpost)."""
    stream._finalize_state(stream.stream_state)


def message_writer(stream: Stream) -> GenericSingerWriter[t.Any, t.Any]:
    """The tap's message writer, which the stream has no public handle to."""
    return stream._tap.message_writer


def records_pass_unchanged(stream: Stream) -> bool:
    """True when the SDK's record loop would write each record as it is: only the default stream
    map (no alias, no transform, no flattening) and no dry-run record limit (which that loop
    enforces; `--test` and the SDK's standard tests set one)."""
    maps = stream.stream_maps
    return (
        stream.ABORT_AT_RECORD_COUNT is None
        and len(maps) == 1
        and type(maps[0]) is SameRecordTransform
        and maps[0].stream_alias == stream.name
        and not maps[0].flattening_enabled
    )


class _Metric(str, enum.Enum):
    """Metric names of the tap's own (the SDK's `metrics.Metric` lists only the SDK's)."""

    QUARANTINED_ROW_COUNT = "quarantined_row_count"
    MISFIT_VALUE_COUNT = "misfit_value_count"


def _count(stream: Stream, metric: _Metric, value: int, tags: dict[str, t.Any]) -> None:
    """Log one of the tap's Singer counter metrics through the SDK's metrics logger, like its
    `record_count` (tagged with the stream)."""
    tags = {metrics.Tag.STREAM: stream.name, **tags}
    with metrics.Counter(t.cast(metrics.Metric, metric), tags) as counter:
        counter.increment(value)


def count_quarantined(stream: Stream, rows: int, **tags: t.Any) -> None:
    """The metric `quarantined_row_count`: rows set aside by on_bad_row=quarantine."""
    _count(stream, _Metric.QUARANTINED_ROW_COUNT, rows, tags)


def count_misfits(stream: Stream, field: str, values: int, **tags: t.Any) -> None:
    """The metric `misfit_value_count`: values of `field` the misfit rule nulled, their
    originals kept in CustomVars (`fits`)."""
    _count(stream, _Metric.MISFIT_VALUE_COUNT, values, {"field": field, **tags})
