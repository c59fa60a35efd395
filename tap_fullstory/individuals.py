"""The `individuals` stream: one record per FullStory individual, from `TYPE_INDIVIDUAL` exports.

What a time range means here: FullStory exports the individuals who performed events within the
export's `timeRange`, each with its values as FullStory knows them when the export runs (counts,
durations, last-* values, user variables). So each run makes ONE export over
[bookmark, export limit): every individual active since the last run, once, with fresh values.
The bookmark (`ExportStart`, as for events) then moves to that range's end; the key is `IndvId`,
so an upserting target keeps one row per individual, updated in place whenever it is active again.

The window machinery (plan, fetch and spool, truncated-file resume, state after the export) is the
events stream's; this module supplies the schema, the source and the one-file BATCH mode.
"""

from __future__ import annotations

import datetime as dt
import typing as t
from dataclasses import dataclass

from singer_sdk.exceptions import FatalAPIError

from tap_fullstory.fields import (
    INDIVIDUAL_FIELDS,
    INDIVIDUAL_KEY,
    Splitter,
    individual_request_fields,
    individuals_schema,
)
from tap_fullstory.output import FastSingerWriter
from tap_fullstory.settings import ALL_FIELDS, BUNDLES
from tap_fullstory.sources.segment_export import SegmentExportSource
from tap_fullstory.streams import EventsStream
from tap_fullstory.windows import Window

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

    def splitter(self) -> Splitter:
        return Splitter(mobile=False, fields=INDIVIDUAL_FIELDS)

    @property
    def keyed(self) -> bool:
        return False

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

    def _write_window(self, window: Window, spooled: Spooled) -> int:
        """RECORD fast path: the per-record rows straight to stdout (individuals are few, so
        the events stream's chunked writers are not needed)."""
        written = FastSingerWriter.write_records(
            self.name, self._window_records(window, spooled), self._extracted,
            self.deselected_properties(),
        )
        self._record_counter.increment(written)
        return written

    def get_batches(self, batch_config: t.Any, context: t.Any = None) -> t.Iterator[t.Any]:
        """BATCH mode: one Parquet/JSONL file per run (per export), not per day: a row is an
        individual, not an event of one day. BATCH, then STATE at the range's end."""
        from tap_fullstory.batches import make_writer

        self.state_per_window = False
        self._write_starting_replication_value(context)
        plan = self.plan(context)
        for window in plan:
            writer = make_writer(self, batch_config, window.start)
            try:
                with self.export(plan, window) as records:
                    for record in records:
                        writer.add(record)
                url = writer.close()
            except BaseException as exc:
                writer.abort(exc)
                raise
            self.complete_window(window, context)
            if url is not None:
                self.logger.info("Individuals %s: %d rows in %s", window.label, writer.rows, url)
                yield batch_config.encoding, [url]
        self._finalize_state(self.stream_state)
        self._write_state_message()
