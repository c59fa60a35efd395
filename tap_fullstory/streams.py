"""The `events` stream: each window's trip goes down once, and the bookmark follows it.

`plan` lays out [start, end) windows from the bookmark (`windows`); a source fetches each
window's export to a local spool (`sources/`); `sources.decode` reads it; its rows become records
through the reference (`window_records` -> `records`: `fields` splits typed columns and
CustomVars, `keys` adds EventId) or the C scanner (`scanner`); a writer takes them: RECORD lines
on stdout (`writers.record_lines`), or a UTC day's BATCH part files (`writers.day_parts`). The
bookmark moves to a window's end only after its last record has been written, so it always means
"the first window not yet fully emitted".
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import time
import typing as t

from tap_fullstory import scanner, sdk
from tap_fullstory.fields import EVENT_ID, EXPORT_START, requested_fields, singer_schema
from tap_fullstory.plan import Plan, Progress, RowCount, Source
from tap_fullstory.quarantine import Quarantine, Store
from tap_fullstory.records import RecordMaker
from tap_fullstory.settings import ALL_FIELDS, BUNDLES, Settings
from tap_fullstory.sources.http import FullStoryHTTPStream, quiet_urllib3
from tap_fullstory.sources.pipeline import Pipeline
from tap_fullstory.sources.segment_export import SegmentExportSource
from tap_fullstory.window_records import window_records
from tap_fullstory.windows import Window, export_limit, fmt
from tap_fullstory.writers import day_parts
from tap_fullstory.writers.columnar import ColumnarDayWriter, write_columns
from tap_fullstory.writers.record_lines import (
    ChunkEncoder,
    FastSingerWriter,
    fast_path_allowed,
    record_line_parts,
    utc_now_text,
    write_records,
)

if t.TYPE_CHECKING:
    from singer_sdk import Tap

    from tap_fullstory.sdk import BaseBatchFileEncoding, BatchConfig
    from tap_fullstory.sources.download import Spooled


class EventsStream(FullStoryHTTPStream):
    """Every FullStory event, one record per event, incremental on the export window start."""

    name = "events"
    path = ""
    replication_key = EXPORT_START
    is_sorted = True

    def __init__(self, tap: Tap, settings: Settings) -> None:
        self.settings = settings
        super().__init__(tap=tap, name=self.name, schema=self.stream_schema())
        self.primary_keys = self.key_properties()
        #: RECORD mode writes STATE after each window; batch mode only after each day's file.
        self.state_per_window = True
        quiet_urllib3()
        self._plan: Plan | None = None
        self._record_counter: t.Any = None
        self._extracted = utc_now_text()
        #: Where quarantined rows go (on_bad_row=quarantine); BATCH mode may set it first.
        self.quarantine_store: Store | None = None

    @property
    def check_sorted(self) -> bool:
        # A bundle may straddle the bookmark (start_date inside it, or a changed cadence).
        return self.settings.export_api != BUNDLES

    # --- planning --------------------------------------------------------------------------

    def starting_point(self, context: t.Any) -> dt.datetime:
        """The bookmark (first window not fully emitted), else start_date."""
        return self.get_starting_timestamp(context) or self.settings.start_date

    def export_limit(self) -> dt.datetime:
        s = self.settings
        now = dt.datetime.now(dt.timezone.utc)
        if s.export_api == BUNDLES:  # bundles have their own cadence: no window alignment
            settled = now - s.export_delay
            return settled if s.end_date is None else min(settled, s.end_date)
        return export_limit(now, s.export_delay, s.end_date, s.export_window)

    def source(self) -> Source:
        s = self.settings
        if s.export_api == BUNDLES:
            from tap_fullstory.sources.bundles import BundlesSource

            return BundlesSource(http=self, logger=self.logger, end_date=s.end_date)
        all_fields = s.export_fields == ALL_FIELDS
        return SegmentExportSource(
            http=self,
            segment_id=s.segment_id,
            fields=None if all_fields else requested_fields(mobile=s.include_mobile_fields),
            window=s.export_window,
            poll_interval=s.poll_interval,
            poll_timeout=s.poll_timeout,
            logger=self.logger,
        )

    # --- records ---------------------------------------------------------------------------

    def plan(self, context: t.Any) -> Plan:
        """The windows this run exports, from the bookmark up to the export limit."""
        start = self.starting_point(context)
        limit = self.export_limit()
        self.logger.info("%s", scanner.status(self.settings.c_scanner))
        if start >= limit:
            self.logger.info(
                "Nothing to export: the next window starts at %s and exports are allowed up to %s "
                "(export_delay=%s%s)", fmt(start), fmt(limit), self.settings.export_delay,
                f", end_date={fmt(self.settings.end_date)}" if self.settings.end_date else "",
            )
        source = self.source()
        pipeline = None
        if isinstance(source, SegmentExportSource) and self.settings.max_pending_exports > 1:
            pipeline = Pipeline(source, self.settings.max_pending_exports, self.logger)
        self._plan = Plan(source, start, limit, Progress(self.logger, start, limit), pipeline)
        return self._plan

    def close_plan(self) -> None:
        """End the run's plan: exports prepared ahead and not used are abandoned (and logged)."""
        if self._plan is not None:
            self._plan.close()
            self._plan = None

    @contextlib.contextmanager
    def export(
        self, plan: Plan, window: Window,
        direct: t.Callable[[Window, Spooled, RecordMaker], int] | None = None,
    ) -> t.Iterator[t.Iterator[dict]]:
        """Fetch one window's file and give its records; the spool is removed afterwards.
        With `direct` (the fast paths), it writes the window itself and gives no records."""
        begun = time.monotonic()
        spooled = plan.fetch(window)
        self._extracted = utc_now_text()
        maker = self.record_maker(window)
        counter = RowCount()
        try:
            if direct is not None:
                counter.rows = direct(window, spooled, maker)
                yield iter(())
            else:
                yield counter.wrap(self._window_records(window, spooled, maker))
        finally:
            spooled.close()
        if maker.nul_rows:
            self.logger.info("Window %s: %d row(s) held NUL characters (U+0000): %s "
                             "(nul_characters=%s)", window.label, maker.nul_rows,
                             *(("removed", "strip") if maker.strip_nul else ("kept", "keep")))
        self.report_misfits(window, maker)
        plan.progress.done(window, counter.rows, spooled.size, time.monotonic() - begun)

    def get_records(self, context: t.Any) -> t.Iterable[dict]:
        """Records of every planned window; the bookmark moves after each window.

        On the fast path (no stream maps, no flattening) records are written straight to stdout
        here instead of one by one through the SDK's record loop, which would only re-check what
        the catalogue already guarantees.
        """
        plan = self.plan(context)
        direct = self._write_window if fast_path_allowed(self) else None
        try:
            for window in plan:
                with self.export(plan, window, direct) as records:
                    yield from records  # nothing on the fast path: `direct` wrote them
                self.complete_window(window, context)
        finally:
            self.close_plan()

    def _write_window(self, window: Window, spooled: Spooled, maker: RecordMaker) -> int:
        """The fast path: one window's RECORD lines straight to stdout; returns the rows.

        The C scanner (`record_lines.write_records`) writes what it can; if it stops early
        (malformed row, rows out of order, truncated file...) the window's reference resumes
        after the rows already written and handles the problem as usual."""
        drop = self.deselected_properties()
        written = 0
        if self.use_c_scanner:
            encoder = ChunkEncoder(record_line_parts(self.name, self._extracted), maker, drop)
            run = write_records(spooled.path, encoder)
            self.log_fallbacks(window, run)
            if run.complete:
                self._record_counter.increment(run.written)
                return run.written
            written = run.written
        written += FastSingerWriter.write_records(
            self.name, self._window_records(window, spooled, maker, emitted=written),
            self._extracted, drop,
        )
        self._record_counter.increment(written)
        return written

    @property
    def use_c_scanner(self) -> bool:
        return scanner.AVAILABLE and self.settings.c_scanner

    def record_maker(self, window: Window) -> RecordMaker:
        """The reference for one window's rows (shared by its chunks and its per-record path)."""
        return RecordMaker(mobile=self.settings.include_mobile_fields,
                           use_keys=self.settings.event_id,
                           export_start=fmt(window.start), export_end=fmt(window.end),
                           **self.text_rules(window))

    def text_rules(self, window: Window) -> dict[str, t.Any]:
        """RecordMaker's NUL rule (nul_characters) for this stream's window."""
        strip = self.settings.strip_nul

        def on_nul(count: int) -> None:  # kept: say so before the first such row is written
            if count == 1 and not strip:
                self.logger.warning(
                    "Export %s: a row holds a NUL character (U+0000), kept as sent "
                    "(nul_characters=keep); PostgreSQL and Redshift cannot store it in text: set "
                    "nul_characters: strip to remove it", window.label)

        return {"strip_nul": strip, "on_nul": on_nul}

    def quarantine(self, window: Window, maker: RecordMaker) -> Quarantine | None:
        """The window's quarantine (on_bad_row=quarantine), else None: a bad row fails it."""
        if not self.settings.quarantine:
            return None
        if self.quarantine_store is None:
            self.quarantine_store = Store(self.settings.quarantine_path)
        return Quarantine(self.quarantine_store, self.name, window, maker.export_start,
                          maker.export_end)

    def report_quarantine(self, window: Window, quarantine: Quarantine) -> None:
        """The window completed: its quarantine file takes its place, and the run says so."""
        location = quarantine.commit()
        if location is None:
            return
        rows = quarantine.rows
        shown = ", ".join(map(str, rows[:10])) + (", ..." if len(rows) > 10 else "")
        self.logger.warning(
            "Export %s: %d row(s) could not be decoded (row %s); quarantined to %s, the rest of "
            "the window loaded (on_bad_row=quarantine)", window.label, len(rows), shown, location)
        sdk.count_quarantined(self, len(rows), export_start=quarantine.export_start,
                              export_end=quarantine.export_end)

    def report_misfits(self, window: Window, maker: RecordMaker) -> None:
        """One WARNING per window for the values that did not fit their column's type (counted
        per field), and the Singer metric `misfit_value_count` per field (docs/misfits.md)."""
        counts = maker.fitter.take_counts()
        if not counts:
            return
        fields = ", ".join(f"{name} {n}" for name, n in sorted(counts.items()))
        self.logger.warning(
            "Export %s: %d value(s) did not fit their column's type; written as null, each "
            "original kept in CustomVars under its field's name (%s)", window.label,
            sum(counts.values()), fields)
        for name, n in sorted(counts.items()):
            sdk.count_misfits(self, name, n, export_start=maker.export_start,
                              export_end=maker.export_end)

    def log_fallbacks(self, window: Window, run: scanner.ChunkRun) -> None:
        """Chunks the C scanner left to the reference, per reason (INFO: they cost speed)."""
        if run.fallbacks:
            self.logger.info("Window %s: %s", window.label, run.summary())

    def get_batches(self, batch_config: BatchConfig, context: t.Any = None
                    ) -> t.Iterator[tuple[BaseBatchFileEncoding, list[str]]]:
        """BATCH mode: the windows into part files per UTC day (`writers.day_parts`); one BATCH
        message per day, then STATE. The bookmark moves per window (`complete_window`) but only
        once the day's parts are committed, and STATE is written only by the SDK after each
        yield, or here for a day without rows, so a STATE never covers a part not complete."""
        settings = self.settings.batch
        assert settings is not None
        storage = batch_config.storage
        self.state_per_window = False
        sdk.write_starting_value(self, context)
        if self.settings.quarantine and self.settings.quarantine_path is None:
            self.quarantine_store = Store(storage=storage, prefix=storage.prefix or "")
        plan = self.plan(context)

        def open_writer(first_start: dt.datetime) -> day_parts.DayWriter:
            return day_parts.make_writer(self, settings, storage, first_start)

        def write_window(window: Window, writer: day_parts.DayWriter) -> None:
            with self.export(plan, window, self._day_direct(writer)) as records:
                add = writer.add
                for record in records:
                    add(record)

        try:
            with day_parts.quiet_gc():
                for day in day_parts.write_days(plan, open_writer, write_window,
                                                self.quarantine_store):
                    for window in day.windows:  # never ahead of committed parts
                        self.complete_window(window, context)
                    last = day.windows[-1]
                    if not day.urls:
                        self.logger.info("Day %s: no events; no file, state moves to %s",
                                         last.day, last.end.isoformat())
                        sdk.write_state(self)
                        continue
                    seconds = time.monotonic() - day.begun
                    self.logger.info("Day %s: %d rows in %d part file(s) (%.1f s, %.0f rows/s)",
                                     last.day, day.rows, len(day.urls), seconds,
                                     day.rows / seconds if seconds > 0 else 0.0)
                    yield batch_config.encoding, day.urls
            sdk.finalize_state(self)
            sdk.write_state(self)
        finally:
            self.close_plan()

    def _day_direct(self, writer: day_parts.DayWriter
                    ) -> t.Callable[[Window, Spooled, RecordMaker], int] | None:
        """The day parts' fast path for one window (the C scanner: `columnar.write_columns` or
        `day_parts.write_lines`), or None: every row through the reference. Where the scanner
        stops early, the window's reference resumes after the rows it wrote (same export, same
        rows)."""
        fast: t.Callable[[str, RecordMaker], scanner.ChunkRun]
        if not self.use_c_scanner:
            return None
        if isinstance(writer, ColumnarDayWriter):
            fast = functools.partial(write_columns, writer=writer)
        elif isinstance(writer, day_parts.JsonlDayWriter):
            fast = functools.partial(day_parts.write_lines, writer=writer)
        else:
            return None

        def direct(window: Window, spooled: Spooled, maker: RecordMaker) -> int:
            run = fast(spooled.path, maker=maker)
            self.log_fallbacks(window, run)
            written = run.written
            if not run.complete:
                add = writer.add
                for record in self._window_records(window, spooled, maker, emitted=written):
                    add(record)
                    written += 1
            return written

        return direct

    def deselected_properties(self) -> list[str]:
        """Properties the catalog deselected (the SDK removes them in RECORD mode only)."""
        return [
            name for name in self.schema["properties"]
            if not self.mask.get(("properties", name), True)
        ]

    def get_record_counter(self, **kwargs: t.Any) -> t.Any:
        # Kept so the fast path can count what it writes in the SDK's record_count metric.
        self._record_counter = super().get_record_counter(**kwargs)
        return self._record_counter

    def stream_schema(self) -> dict[str, t.Any]:
        s = self.settings
        return singer_schema(mobile=s.include_mobile_fields, event_id=s.event_id)

    def key_properties(self) -> list[str]:
        return [EVENT_ID] if self.settings.event_id else []

    def complete_window(self, window: Window, context: t.Any) -> None:
        """Move the bookmark to the window's end (and say so, in RECORD mode)."""
        sdk.move_bookmark(self, fmt(window.end), context)
        if self.state_per_window:
            sdk.write_state(self)

    def _window_records(
        self, window: Window, spooled: Spooled, maker: RecordMaker, emitted: int = 0
    ) -> t.Iterator[dict]:
        """The window's records through the reference, after the first `emitted` rows."""
        quarantine = self.quarantine(window, maker)  # here: only once the records are read
        yield from window_records(window, spooled, maker, emitted=emitted, quarantine=quarantine,
                                  logger=self.logger,
                                  report=lambda done: self.report_quarantine(window, done))
