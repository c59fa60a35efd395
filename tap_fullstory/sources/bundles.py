"""The legacy Data Export bundles API (`/api/v1/export/list` and `/get`), as hauser used until 2020.

Each bundle is one window: ExportStart/ExportEnd are its Start/Stop, and the bookmark after it is
its Stop. Listing pages hold 20 bundles and continue from the last bundle's Stop. Downloads are
limited to 2 per minute: a 429 is waited out as Retry-After says, never a failure.
"""

from __future__ import annotations

import datetime as dt
import logging
import typing as t
from dataclasses import dataclass

from singer_sdk.exceptions import FatalAPIError

from tap_fullstory.sources.download import Spooled, spool_again
from tap_fullstory.sources.http import FullStoryHTTPStream
from tap_fullstory.windows import UTC, Window

LIST_PATH = "/api/v1/export/list"
GET_PATH = "/api/v1/export/get"


def _field(bundle: dict[str, t.Any], name: str) -> t.Any:
    """Bundle keys are matched case-insensitively ('Id' in the docs, 'ID' in old clients)."""
    for key, value in bundle.items():
        if key.lower() == name:
            return value
    raise FatalAPIError(f"FullStory's bundle list has an entry without {name!r}")


@dataclass
class BundlesSource:
    http: FullStoryHTTPStream
    logger: logging.Logger
    end_date: dt.datetime | None

    def windows(self, start: dt.datetime, limit: dt.datetime) -> t.Iterator[Window]:
        """Bundles whose Stop is after `start` and at or before `limit`, in order, page by page."""
        cursor = int(start.timestamp())
        while True:
            before = cursor
            page = self.http.api("GET", LIST_PATH, params={"start": cursor})
            exports = page.get("exports") if isinstance(page, dict) else None
            if not exports:
                return
            bundles = sorted(
                (
                    Window(
                        dt.datetime.fromtimestamp(int(_field(b, "start")), UTC),
                        dt.datetime.fromtimestamp(int(_field(b, "stop")), UTC),
                        bundle_id=int(_field(b, "id")),
                    )
                    for b in exports
                ),
                key=lambda w: (w.start, w.end),
            )
            for bundle in bundles:
                if bundle.end.timestamp() <= cursor:
                    continue  # defensive: the API returns only Stop > start
                if bundle.end > limit:
                    return  # not settled yet (export_delay) or past end_date: a later run
                yield bundle
                cursor = int(bundle.end.timestamp())
            if len(exports) < 20 or cursor <= before:
                return

    def fetch(self, window: Window) -> Spooled:
        return spool_again(
            self.http,
            lambda: f"{self.http.url_base}{GET_PATH}?id={window.bundle_id}",
            authenticated=True,
            logger=self.logger,
            what=f"download of bundle {window.bundle_id} {window.label}",
        )
