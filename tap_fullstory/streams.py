"""The `events` stream: export windows -> source (segment export or bundles) -> records.

Data flows one way: `windows` plans [start, end) windows from the bookmark, a source fetches each
window's file to a local spool, `decode` streams its rows, `fields` splits them into typed
columns and CustomVars, `keys` adds EventId. The bookmark moves to a window's end only after its
last record has been written, so it always means "the first window not yet fully emitted".
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import itertools
import time
import typing as t

from singer_sdk.exceptions import FatalAPIError

from tap_fullstory import native, sdk
from tap_fullstory.fields import EVENT_ID, EXPORT_START, requested_fields, singer_schema
from tap_fullstory.keys import EventKeyer, OutOfOrderError
from tap_fullstory.output import ChunkEncoder, FastSingerWriter, fast_path_allowed, utc_now_text
from tap_fullstory.quarantine import Quarantine, Store
from tap_fullstory.records import RecordMaker
from tap_fullstory.settings import ALL_FIELDS, BUNDLES, Settings
from tap_fullstory.sources.decode import (
    MalformedExportError,
    TruncatedExportError,
    fail_on_bad_row,
    iter_rows,
)
from tap_fullstory.sources.download import Spooled
from tap_fullstory.sources.http import FullStoryHTTPStream, quiet_urllib3
from tap_fullstory.sources.pipeline import Pipeline
from tap_fullstory.sources.segment_export import SegmentExportSource
from tap_fullstory.windows import Window, export_limit, fmt

if t.TYPE_CHECKING:
    from singer_sdk import Tap

REDOWNLOADS = 3


class Source(t.Protocol):
    def windows(self, start: dt.datetime, limit: dt.datetime) -> t.Iterator[Window]: ...
    def fetch(self, window: Window) -> Spooled: ...


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
        self.logger.info("%s", native.status(self.settings.c_scanner))
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
        counter = _Counter()
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

        The C scanner (`native.write_records`) writes what it can; if it stops early (malformed
        row, rows out of order, truncated file...) the window's reference resumes after the rows
        already written and handles the problem as usual."""
        drop = self.deselected_properties()
        written = 0
        if self.use_c_scanner:
            encoder = ChunkEncoder(self.name, self._extracted, maker, drop)
            run = native.write_records(spooled.path, encoder)
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
        return native.AVAILABLE and self.settings.c_scanner

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

    def log_fallbacks(self, window: Window, run: native.ChunkRun) -> None:
        """Chunks the C scanner left to the reference, per reason (INFO: they cost speed)."""
        if run.fallbacks:
            self.logger.info("Window %s: %s", window.label, run.summary())

    def get_batches(self, batch_config: t.Any, context: t.Any = None) -> t.Iterator[t.Any]:
        """BATCH mode: one Parquet/JSONL file per UTC day (see tap_fullstory.batches)."""
        from tap_fullstory.batches import day_batches

        try:
            yield from day_batches(self, batch_config, context)
        finally:
            self.close_plan()

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
        """Records of one window's file, after the first `emitted` rows (written already); a
        truncated file is downloaded again and resumed after the rows already emitted (same
        export, same bytes), never emitting a row twice. Rows that cannot be decoded fail the
        window, or go to its quarantine once each however often the file is read."""
        redownloads = 0
        whole_window = False
        current = spooled
        quarantine = self.quarantine(window, maker)
        on_bad = quarantine.add if quarantine is not None else fail_on_bad_row
        try:
            while True:
                try:
                    rows = iter_rows(current.path, loads=maker.loads, on_bad=on_bad)
                    for record in maker.records(rows, EventKeyer(whole_window=whole_window),
                                                emitted):
                        emitted += 1
                        yield record
                    if quarantine is not None:
                        self.report_quarantine(window, quarantine)
                    return
                except OutOfOrderError:
                    self.logger.info(
                        "Export %s is not sorted by EventStart; keying over the whole window",
                        window.label,
                    )
                    whole_window = True
                except MalformedExportError as exc:
                    advice = ("; to set such rows aside in a quarantine file and load the rest, "
                              "set on_bad_row: quarantine" if exc.row is not None else "")
                    raise FatalAPIError(f"export {window.label}: {exc}; nothing of this window "
                                        f"is bookmarked{advice}") from None
                except TruncatedExportError as exc:
                    redownloads += 1
                    if current.again is None or redownloads > REDOWNLOADS:
                        raise FatalAPIError(f"export {window.label}: {exc}") from None
                    self.logger.warning(
                        "Export %s: %s; downloading it again (resuming after row %d)",
                        window.label, exc, emitted,
                    )
                    fresh = current.again()
                    if current is not spooled:
                        current.close()
                    current = fresh
        finally:
            if quarantine is not None:
                quarantine.abort()  # no-op once committed
            if current is not spooled:
                current.close()


class Plan:
    """Iterates the planned windows and fetches each one's export, through the pipeline when
    exports are prepared ahead (max_pending_exports > 1); `peek()` looks one window ahead (day
    batches need to know when a day's last window has been done)."""

    def __init__(self, source: Source, start: dt.datetime, limit: dt.datetime, progress: Progress,
                 pipeline: Pipeline | None = None) -> None:
        self.source = source
        self.start = start
        self.limit = limit
        self.progress = progress
        self.pipeline = pipeline
        self._windows = source.windows(start, limit)
        self._ahead: collections.deque[Window] = collections.deque()

    def __iter__(self) -> Plan:
        return self

    def __next__(self) -> Window:
        if self._ahead:
            return self._ahead.popleft()
        return next(self._windows)

    def peek(self) -> Window | None:
        following = self.ahead(1)
        return following[0] if following else None

    def ahead(self, count: int) -> list[Window]:
        """The next `count` windows (fewer at the end), without consuming them."""
        while len(self._ahead) < count and (window := next(self._windows, None)) is not None:
            self._ahead.append(window)
        return list(itertools.islice(self._ahead, count))

    def fetch(self, window: Window) -> Spooled:
        """The window's spooled export; the windows are fetched in order."""
        if self.pipeline is None:
            return self.source.fetch(window)
        return self.pipeline.fetch(window, self.ahead(self.pipeline.max_pending - 1))

    def close(self) -> None:
        if self.pipeline is not None:
            self.pipeline.close()


class _Counter:
    """Counts the records a window yields, for the progress line."""

    def __init__(self) -> None:
        self.rows = 0

    def wrap(self, records: t.Iterator[dict]) -> t.Iterator[dict]:
        for record in records:
            self.rows += 1
            yield record


class Progress:
    """One log line per window: rows, bytes, rows/s; during a backfill windows done/total and ETA."""

    def __init__(self, logger: t.Any, start: dt.datetime, limit: dt.datetime) -> None:
        self.logger = logger
        self.start = start
        self.limit = limit
        self.begun = time.monotonic()
        self.windows = 0
        self.rows = 0

    def done(self, window: Window, rows: int, size: int, seconds: float) -> None:
        self.windows += 1
        self.rows += rows
        covered = (window.end - self.start).total_seconds()
        total = max(1.0, (self.limit - self.start).total_seconds())
        elapsed = time.monotonic() - self.begun
        remaining = elapsed * (total - covered) / covered if covered > 0 else 0.0
        self.logger.info(
            "Window %s: %d rows, %.1f MB downloaded, %.0f rows/s; %d windows done, %.0f%% of the "
            "range, ETA %s",
            window.label, rows, size / 1e6, rows / seconds if seconds > 0 else 0.0, self.windows,
            100 * min(1.0, covered / total), dt.timedelta(seconds=round(remaining)),
        )
