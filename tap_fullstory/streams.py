"""The `events` stream: export windows -> source (segment export or bundles) -> records.

Data flows one way: `windows` plans [start, end) windows from the bookmark, a source fetches each
window's file to a local spool, `decode` streams its rows, `fields` splits them into typed
columns and CustomVars, `keys` adds EventId. The bookmark moves to a window's end only after its
last record has been written, so it always means "the first window not yet fully emitted".
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
import typing as t

from singer_sdk.exceptions import FatalAPIError

from tap_fullstory import native, sdk
from tap_fullstory.fields import EVENT_ID, EXPORT_START, requested_fields, singer_schema
from tap_fullstory.keys import EventKeyer, OutOfOrderError
from tap_fullstory.output import ChunkEncoder, FastSingerWriter, fast_path_allowed, utc_now_text
from tap_fullstory.records import RecordMaker
from tap_fullstory.settings import BUNDLES, Settings
from tap_fullstory.sources.decode import MalformedExportError, TruncatedExportError, iter_rows
from tap_fullstory.sources.download import Spooled
from tap_fullstory.sources.http import FullStoryHTTPStream, quiet_urllib3
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
        super().__init__(
            tap=tap,
            name=self.name,
            schema=singer_schema(mobile=settings.include_mobile_fields, event_id=settings.event_id),
        )
        self.primary_keys = [EVENT_ID] if settings.event_id else []
        #: RECORD mode writes STATE after each window; batch mode only after each day's file.
        self.state_per_window = True
        quiet_urllib3()
        self._record_counter: t.Any = None
        self._extracted = utc_now_text()

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
        return SegmentExportSource(
            http=self,
            segment_id=s.segment_id,
            fields=requested_fields(mobile=s.include_mobile_fields),
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
        return Plan(self.source(), start, limit, Progress(self.logger, start, limit))

    @contextlib.contextmanager
    def export(
        self, plan: Plan, window: Window,
        direct: t.Callable[[Window, Spooled], int] | None = None,
    ) -> t.Iterator[t.Iterator[dict]]:
        """Fetch one window's file and give its records; the spool is removed afterwards.
        With `direct` (the RECORD fast path), it writes the window itself and gives no records."""
        begun = time.monotonic()
        spooled = plan.source.fetch(window)
        self._extracted = utc_now_text()
        counter = _Counter()
        try:
            if direct is not None:
                counter.rows = direct(window, spooled)
                yield iter(())
            else:
                yield counter.wrap(self._window_records(window, spooled))
        finally:
            spooled.close()
        plan.progress.done(window, counter.rows, spooled.size, time.monotonic() - begun)

    def get_records(self, context: t.Any) -> t.Iterable[dict]:
        """Records of every planned window; the bookmark moves after each window.

        On the fast path (no stream maps, no flattening) records are written straight to stdout
        here instead of one by one through the SDK's record loop, which would only re-check what
        the catalogue already guarantees.
        """
        plan = self.plan(context)
        direct = self._write_window if fast_path_allowed(self) else None
        for window in plan:
            with self.export(plan, window, direct) as records:
                yield from records  # nothing on the fast path: `direct` wrote them
            self.complete_window(window, context)

    def _write_window(self, window: Window, spooled: Spooled) -> int:
        """The fast path: one window's RECORD lines straight to stdout; returns the rows.

        The C scanner (`native.write_records`) writes what it can; if it stops early (malformed
        row, rows out of order, truncated file...) the window's reference resumes after the rows
        already written and handles the problem as usual."""
        drop = self.deselected_properties()
        written = 0
        if self.use_c_scanner:
            encoder = ChunkEncoder(self.name, self._extracted, self.record_maker(window), drop)
            run = native.write_records(spooled.path, encoder)
            self.log_fallbacks(window, run)
            if run.complete:
                self._record_counter.increment(run.written)
                return run.written
            written = run.written
        written += FastSingerWriter.write_records(
            self.name, self._window_records(window, spooled, emitted=written),
            self._extracted, drop,
        )
        self._record_counter.increment(written)
        return written

    @property
    def use_c_scanner(self) -> bool:
        return native.AVAILABLE and self.settings.c_scanner

    def record_maker(self, window: Window) -> RecordMaker:
        """The reference for one window's rows."""
        return RecordMaker(mobile=self.settings.include_mobile_fields,
                           use_keys=self.settings.event_id,
                           export_start=fmt(window.start), export_end=fmt(window.end))

    def log_fallbacks(self, window: Window, run: native.ChunkRun) -> None:
        """Chunks the C scanner left to the reference, per reason (INFO: they cost speed)."""
        if run.fallbacks:
            self.logger.info("Window %s: %s", window.label, run.summary())

    def get_batches(self, batch_config: t.Any, context: t.Any = None) -> t.Iterator[t.Any]:
        """BATCH mode: one Parquet/JSONL file per UTC day (see tap_fullstory.batches)."""
        from tap_fullstory.batches import day_batches

        return day_batches(self, batch_config, context)

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

    def complete_window(self, window: Window, context: t.Any) -> None:
        """Move the bookmark to the window's end (and say so, in RECORD mode)."""
        sdk.move_bookmark(self, fmt(window.end), context)
        if self.state_per_window:
            sdk.write_state(self)

    def _window_records(
        self, window: Window, spooled: Spooled, emitted: int = 0
    ) -> t.Iterator[dict]:
        """Records of one window's file, after the first `emitted` rows (written already); a
        truncated file is downloaded again and resumed after the rows already emitted (same
        export, same bytes), never emitting a row twice."""
        maker = self.record_maker(window)
        redownloads = 0
        whole_window = False
        current = spooled
        try:
            while True:
                try:
                    for record in maker.records(iter_rows(current.path),
                                                EventKeyer(whole_window=whole_window), emitted):
                        emitted += 1
                        yield record
                    return
                except OutOfOrderError:
                    self.logger.info(
                        "Export %s is not sorted by EventStart; keying over the whole window",
                        window.label,
                    )
                    whole_window = True
                except MalformedExportError as exc:
                    raise FatalAPIError(
                        f"export {window.label}: {exc}; nothing of this window is bookmarked"
                    ) from None
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
            if current is not spooled:
                current.close()


class Plan:
    """Iterates the planned windows; `peek()` looks one ahead (day batches need to know when a
    day's last window has been done)."""

    def __init__(self, source: Source, start: dt.datetime, limit: dt.datetime, progress: Progress) -> None:
        self.source = source
        self.start = start
        self.limit = limit
        self.progress = progress
        self._windows = source.windows(start, limit)
        self._next: Window | None = None

    def __iter__(self) -> Plan:
        return self

    def __next__(self) -> Window:
        if self._next is not None:
            window, self._next = self._next, None
            return window
        return next(self._windows)

    def peek(self) -> Window | None:
        if self._next is None:
            self._next = next(self._windows, None)
        return self._next


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
