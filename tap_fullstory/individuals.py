"""The `individuals` stream: one record per FullStory individual, from `TYPE_INDIVIDUAL` exports.

What a time range means here: FullStory exports the individuals who performed events within the
export's `timeRange`, each with its values as FullStory knows them when the export runs (counts,
durations, last-* values, user variables). So each run makes ONE export over
[bookmark, export limit): every individual active since the last run, once, with fresh values.
The bookmark (`ExportStart`, as for events) then moves to that range's end; the key is `IndvId`,
so an upserting target keeps one row per individual, updated in place whenever it is active again.

The window machinery (plan, fetch and spool, truncated-file resume, state after the export, BATCH
files) is the events stream's; this module supplies the schema, the source and the record maker.
The plan has one window, so BATCH mode writes one file (in parts) per run, not one per day.
"""

from __future__ import annotations

import datetime as dt
import typing as t
from dataclasses import dataclass

import orjson
from singer_sdk.exceptions import FatalAPIError

from tap_fullstory.fields import (
    INDIVIDUAL_FIELDS,
    INDIVIDUAL_KEY,
    INT,
    individual_request_fields,
    individuals_schema,
)
from tap_fullstory.fits import MISFIT, fit_value
from tap_fullstory.records import RecordMaker
from tap_fullstory.settings import ALL_FIELDS, BUNDLES
from tap_fullstory.sources.decode import UnusableRow
from tap_fullstory.sources.segment_export import SegmentExportSource
from tap_fullstory.streams import EventsStream
from tap_fullstory.windows import Window, fmt

if t.TYPE_CHECKING:
    from tap_fullstory.sources.download import Spooled

TYPE_INDIVIDUAL = "TYPE_INDIVIDUAL"


@dataclass
class IndividualsSource:
    """One individuals export over the whole planned range (not one per window: an individual
    active in several windows would only be exported several times with the same values)."""

    export: SegmentExportSource

    def windows(self, start: dt.datetime, limit: dt.datetime) -> t.Iterator[Window]:
        return iter([Window(start, limit)] if start < limit else [])

    def fetch(self, window: Window) -> Spooled:
        return self.export.fetch(window)


class IndividualRecords(RecordMaker):
    """Individual rows -> records; a row without a valid IndvId (the key: absent, null, or not
    an integer within 64 bits) is a bad row (on_bad_row), never a record without its key."""

    def loads(self, line: bytes) -> t.Any:  # type: ignore[override]
        row = RecordMaker.loads(line)
        if isinstance(row, dict):
            key = row.get(INDIVIDUAL_KEY)
            if key is None:  # another case of the name is the key too (`fields.Splitter`)
                key = next((v for k, v in row.items() if k.lower() == "indvid"), None)
            if fit_value(INT, key) in (None, MISFIT):
                raise UnusableRow(f"an individual without a valid {INDIVIDUAL_KEY} "
                                  f"(the key): {orjson.dumps(key).decode()[:40]}")
        return row


class IndividualsStream(EventsStream):
    """Every individual active in the exported range, one record each, keyed by IndvId."""

    name = "individuals"
    #: Opt-in (catalog or Meltano `select`): an existing events pipeline gets no new table and
    #: no extra export per run.
    selected_by_default = False

    def stream_schema(self) -> dict[str, t.Any]:
        return individuals_schema()

    def key_properties(self) -> list[str]:
        return [INDIVIDUAL_KEY]

    @property
    def use_c_scanner(self) -> bool:
        """The C scanner writes event rows; individuals are few and take the reference."""
        return False

    def record_maker(self, window: Window) -> RecordMaker:
        """Individual rows -> records: the individual catalogue's columns, CustomVars, no EventId."""
        return IndividualRecords(mobile=False, use_keys=False, fields=INDIVIDUAL_FIELDS,
                                 export_start=fmt(window.start), export_end=fmt(window.end),
                                 **self.text_rules(window))

    def source(self) -> IndividualsSource:
        s = self.settings
        if s.export_api == BUNDLES:
            raise FatalAPIError(
                "individuals: the legacy bundles API (export_api=bundles) exports no individuals; "
                "deselect the individuals stream or use export_api=segment_export"
            )
        return IndividualsSource(SegmentExportSource(
            http=self,
            segment_id=s.segment_id,
            fields=None if s.export_fields == ALL_FIELDS else individual_request_fields(),
            window=s.export_window,
            poll_interval=s.poll_interval,
            poll_timeout=s.poll_timeout,
            logger=self.logger,
            row_type=TYPE_INDIVIDUAL,
        ))
