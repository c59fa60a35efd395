"""tap-fullstory: settings and the stream list."""

from __future__ import annotations

import functools

from singer_sdk import Tap
from singer_sdk.exceptions import ConfigValidationError, FatalAPIError, RetriableAPIError

from tap_fullstory import DISTRIBUTION
from tap_fullstory.individuals import IndividualsStream
from tap_fullstory.settings import Settings, config_jsonschema
from tap_fullstory.sources.http import MAX_TRIES
from tap_fullstory.streams import EventsStream
from tap_fullstory.windows import ConfigError
from tap_fullstory.writers.record_lines import FastSingerWriter


class TapFullStory(Tap):
    """Singer tap for FullStory raw event exports."""

    name = "tap-fullstory"
    #: Where the SDK reads the version for `--version` and `--about` (the distribution's name).
    package_name = DISTRIBUTION
    message_writer_class = FastSingerWriter

    config_jsonschema = config_jsonschema()

    @functools.cached_property
    def settings(self) -> Settings:
        """Validated settings; an invalid value stops the tap here, before any request."""
        try:
            return Settings.from_config(self.config)
        except ConfigError as exc:
            raise ConfigValidationError(str(exc), errors=[str(exc)]) from None

    def discover_streams(self) -> list[EventsStream]:
        return [EventsStream(self, self.settings), IndividualsStream(self, self.settings)]

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
