"""tap-fullstory: settings and the stream list."""

from __future__ import annotations

import functools

from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError, FatalAPIError, RetriableAPIError

from tap_fullstory.output import FastSingerWriter
from tap_fullstory.settings import DEFAULT_DELAY, DEFAULT_PENDING_EXPORTS, DEFAULT_WINDOW, Settings
from tap_fullstory.sources.http import MAX_TRIES
from tap_fullstory.streams import EventsStream
from tap_fullstory.windows import ConfigError


class TapFullStory(Tap):
    """Singer tap for FullStory raw event exports."""

    name = "tap-fullstory"
    message_writer_class = FastSingerWriter

    config_jsonschema = th.PropertiesList(
        th.Property("api_key", th.StringType, required=True, secret=True, title="API key",
                    description="FullStory API key, sent as 'Authorization: Basic <key>'. Segment "
                    "exports need an Admin key."),
        th.Property("api_url", th.StringType, title="API base URL",
                    description="Base URL of the FullStory API. Default https://api.fullstory.com "
                    "(EU: https://api.eu1.fullstory.com); for export_api=bundles the default is "
                    "https://export.fullstory.com. Point it at the local emulator for tests."),
        th.Property("export_api", th.StringType, default="segment_export",
                    allowed_values=["segment_export", "bundles"], title="Export API",
                    description="segment_export (the current Segment Export API) or bundles (the "
                    "legacy Data Export bundles that hauser used until 2020)."),
        th.Property("segment_id", th.StringType, default="everyone", title="Segment ID",
                    description="Segment to export (segment_export only); 'everyone' exports all events."),
        th.Property("start_date", th.DateTimeType, title="Start date",
                    description="First instant to export (UTC) when there is no state. Default: "
                    "30 days before now, at midnight UTC."),
        th.Property("end_date", th.DateTimeType, title="End date",
                    description="Optional exclusive end (UTC). Lets a backfill be split into "
                    "parallel runs over disjoint ranges."),
        th.Property("export_window", th.StringType, default=DEFAULT_WINDOW, title="Export window",
                    description="Length of one export, e.g. 1h, 6h, 24h: 15m to 24h, must divide "
                    "24h. Windows are aligned to UTC multiples of it."),
        th.Property("export_delay", th.StringType, default=DEFAULT_DELAY, title="Export delay",
                    description="Only windows that ended at least this long ago are exported "
                    "(FullStory values settle late). At least 1h."),
        th.Property("include_mobile_fields", th.BooleanType, default=False, title="Include mobile fields",
                    description="Request and keep the 8 mobile app fields (AppName, ... "
                    "EventMobileSourceFile) as columns; only for accounts with mobile apps."),
        th.Property("event_id", th.BooleanType, default=True, title="EventId key",
                    description="Add a deterministic EventId and declare it the stream's key, so "
                    "upserting targets never duplicate a re-exported window. Turn off for "
                    "append-only loads without a key."),
        th.Property("request_timeout", th.NumberType, default=300, title="Request timeout",
                    description="Seconds to wait on any one HTTP read before retrying."),
        th.Property("poll_interval", th.NumberType, default=5, title="Poll interval",
                    description="Seconds between polls of an export operation."),
        th.Property("poll_timeout", th.NumberType, default=3600, title="Poll timeout",
                    description="Seconds an export operation may stay pending before the run fails."),
        th.Property("max_pending_exports", th.IntegerType, default=DEFAULT_PENDING_EXPORTS,
                    title="Max pending exports",
                    description="Segment exports created ahead and not yet emitted (the one being "
                    "read included), so FullStory prepares the next windows while this one is "
                    "downloaded and read. 1 = one window after another. Output and state are the "
                    "same either way."),
        th.Property("additional_headers", th.ObjectType(additional_properties=th.StringType),
                    title="Additional headers",
                    description="Extra HTTP headers for every FullStory API call (not the signed "
                    "download), like hauser's AdditionalHttpHeader."),
    ).to_dict()

    @functools.cached_property
    def settings(self) -> Settings:
        """Validated settings; an invalid value stops the tap here, before any request."""
        try:
            return Settings.from_config(self.config)
        except ConfigError as exc:
            raise ConfigValidationError(str(exc), errors=[str(exc)]) from None

    def discover_streams(self) -> list[EventsStream]:
        return [EventsStream(self, self.settings)]

    def sync_all(self) -> None:  # type: ignore[misc]  # final only for typing; we add one except
        """Fail with one clear line (no traceback) for errors the user can act on."""
        try:
            super().sync_all()
        except FatalAPIError as exc:
            self.logger.error("%s", exc)
            raise SystemExit(1) from None
        except RetriableAPIError as exc:
            self.logger.error("Gave up after %d tries: %s", MAX_TRIES, exc)
            raise SystemExit(1) from None


if __name__ == "__main__":
    TapFullStory.cli()
