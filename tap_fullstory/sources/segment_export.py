"""FullStory's Segment Export API: create export -> poll operation -> results -> signed download.

One export per window. The download goes to a local spool (see `download`), so what the stream
decodes is always a complete file.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import typing as t
from dataclasses import dataclass

from singer_sdk.exceptions import FatalAPIError

from tap_fullstory.sources.download import Spooled, spool_again
from tap_fullstory.sources.http import FullStoryHTTPStream
from tap_fullstory.windows import Window, fmt, plan_windows

FORMAT = "FORMAT_NDJSON"  # line-delimited: the cheapest to decode as a stream


class ExportFailedError(FatalAPIError):
    """FullStory reported the export operation FAILED."""


class PollTimeoutError(FatalAPIError):
    """The export operation did not complete within poll_timeout."""


@dataclass
class SegmentExportSource:
    """Runs one segment export per window and spools its file."""

    http: FullStoryHTTPStream
    segment_id: str
    #: None: no `fields` in the request (FullStory's default set plus every custom variable).
    fields: list[str] | None
    window: dt.timedelta
    poll_interval: float
    poll_timeout: float
    logger: logging.Logger
    row_type: str = "TYPE_EVENT"  # or TYPE_INDIVIDUAL

    def fetch(self, window: Window) -> Spooled:
        operation_id = self.create(window)
        export_id = self._wait(operation_id, window)
        return self.download(export_id, window)

    def windows(self, start: dt.datetime, limit: dt.datetime) -> t.Iterator[Window]:
        return iter(plan_windows(start, self.window, limit=limit))

    # The three steps of `fetch`, also run apart by `pipeline.Pipeline` (exports prepared ahead).

    def create(self, window: Window) -> str:
        """Ask FullStory to prepare the window's export; returns the operation id."""
        body: dict[str, t.Any] = {
            "segmentId": self.segment_id,
            "type": self.row_type,
            "format": FORMAT,
            "segmentTimeRange": {"start": "", "end": ""},
            "timeRange": {"start": fmt(window.start), "end": fmt(window.end)},
        }
        if self.fields is not None:
            body["fields"] = self.fields
        answer = self.http.api("POST", "/segments/v1/exports", json=body)
        operation_id = answer.get("operationId") if isinstance(answer, dict) else None
        if not operation_id:
            raise FatalAPIError(f"FullStory's export create answered without an operationId for {window.label}")
        return str(operation_id)

    def check(self, operation_id: str, window: Window, deadline: float) -> str | None:
        """Poll once: the export id when COMPLETED, None while pending; FAILED and a pending
        operation past `deadline` (monotonic) are errors naming the operation."""
        op = self.http.api("GET", f"/operations/v1/{operation_id}")
        state = str(op.get("state", ""))
        if op.get("type") not in (None, "SEARCH_EXPORT"):
            raise FatalAPIError(f"operation {operation_id} is not an export ({op.get('type')})")
        if state == "COMPLETED":
            export_id = (op.get("results") or {}).get("searchExportId")
            if not export_id:
                raise FatalAPIError(f"operation {operation_id} completed without a searchExportId")
            return str(export_id)
        if state == "FAILED":
            detail = " ".join(str(op.get("errorDetails") or "no details").split())
            raise ExportFailedError(
                f"FullStory export operation {operation_id} for {window.label} FAILED: {detail}"
            )
        if time.monotonic() >= deadline:
            raise PollTimeoutError(
                f"FullStory export operation {operation_id} for {window.label} was still "
                f"{state or 'PENDING'} after poll_timeout={self.poll_timeout:g}s"
            )
        return None

    def download(self, export_id: str, window: Window, stop: threading.Event | None = None) -> Spooled:
        """Spool the prepared export (a fresh signed URL is asked for when one expires)."""
        return spool_again(
            self.http,
            lambda: self._location(export_id),
            authenticated=False,
            logger=self.logger,
            what=f"download of export {window.label}",
            stop=stop,
        )

    def _wait(self, operation_id: str, window: Window) -> str:
        """Poll until COMPLETED; FAILED and poll_timeout are errors naming the operation."""
        deadline = time.monotonic() + self.poll_timeout
        while (export_id := self.check(operation_id, window, deadline)) is None:
            time.sleep(min(self.poll_interval, max(0.0, deadline - time.monotonic())))
        return export_id

    def _location(self, export_id: str) -> str:
        answer = self.http.api("GET", f"/search/v1/exports/{export_id}/results")
        location = answer.get("location") if isinstance(answer, dict) else None
        if not location:
            raise FatalAPIError(f"FullStory returned no download location for export {export_id}")
        return str(location)
