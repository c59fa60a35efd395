"""A run's plan: the windows from the bookmark up to the export limit, each one's export fetched
in order (through the pipeline when exports are prepared ahead), and a progress line per window.
"""

from __future__ import annotations

import collections
import datetime as dt
import itertools
import time
import typing as t

if t.TYPE_CHECKING:
    from tap_fullstory.sources.download import Spooled
    from tap_fullstory.sources.pipeline import Pipeline
    from tap_fullstory.windows import Window


class Source(t.Protocol):
    """Where a window's export comes from (segment export, bundles, individuals)."""

    def windows(self, start: dt.datetime, limit: dt.datetime) -> t.Iterator[Window]: ...
    def fetch(self, window: Window) -> Spooled: ...


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


class RowCount:
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
