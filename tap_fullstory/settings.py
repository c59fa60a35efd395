"""Typed, validated settings: every invalid value stops the tap before any request.

Each error is one line that names the setting, so a user can fix it without reading code.
"""

from __future__ import annotations

import datetime as dt
import typing as t
from dataclasses import dataclass
from urllib.parse import urlsplit

from tap_fullstory.windows import ConfigError, parse_datetime, parse_duration, validate_window

SEGMENT_EXPORT, BUNDLES = "segment_export", "bundles"
DEFAULT_API_URL = {SEGMENT_EXPORT: "https://api.fullstory.com", BUNDLES: "https://export.fullstory.com"}
DEFAULT_WINDOW = "6h"
DEFAULT_DELAY = "24h"
DEFAULT_LOOKBACK = dt.timedelta(days=30)
#: Exports created ahead and not yet emitted (1 = one window after another); see sources/pipeline.py.
DEFAULT_PENDING_EXPORTS = 4
MAX_PENDING_EXPORTS = 16


@dataclass(frozen=True)
class Settings:
    api_key: str
    api_url: str
    export_api: str
    segment_id: str
    start_date: dt.datetime
    end_date: dt.datetime | None
    export_window: dt.timedelta
    export_delay: dt.timedelta
    include_mobile_fields: bool
    request_timeout: float
    poll_interval: float
    poll_timeout: float
    event_id: bool
    max_pending_exports: int = DEFAULT_PENDING_EXPORTS

    @classmethod
    def from_config(cls, config: t.Mapping[str, t.Any], *, now: dt.datetime | None = None) -> Settings:
        now = now or dt.datetime.now(dt.timezone.utc)
        api_key = str(config.get("api_key") or "").strip()
        if not api_key:
            raise ConfigError("api_key: missing; set it to a FullStory API key (Admin key for segment exports)")
        export_api = str(config.get("export_api") or SEGMENT_EXPORT)
        if export_api not in DEFAULT_API_URL:
            raise ConfigError(f"export_api: {export_api!r} must be 'segment_export' or 'bundles'")
        api_url = str(config.get("api_url") or DEFAULT_API_URL[export_api]).rstrip("/")
        parts = urlsplit(api_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
            raise ConfigError(f"api_url: {api_url!r} is not an http(s) base URL (e.g. https://api.fullstory.com)")
        start = config.get("start_date")
        start_date = parse_datetime(start, "start_date") if start else _floor_day(now - DEFAULT_LOOKBACK)
        end = config.get("end_date")
        end_date = parse_datetime(end, "end_date") if end else None
        if end_date is not None and end_date <= start_date:
            raise ConfigError(f"end_date: {end} must be after start_date ({start_date.isoformat()})")
        window = validate_window(parse_duration(config.get("export_window") or DEFAULT_WINDOW, "export_window"))
        delay = parse_duration(config.get("export_delay") or DEFAULT_DELAY, "export_delay")
        if delay < dt.timedelta(hours=1):
            raise ConfigError(f"export_delay: {delay} is below the minimum of 1h (FullStory data settles late)")
        segment_id = str(config.get("segment_id") or "everyone").strip()
        return cls(
            api_key=api_key,
            api_url=api_url,
            export_api=export_api,
            segment_id=segment_id,
            start_date=start_date,
            end_date=end_date,
            export_window=window,
            export_delay=delay,
            include_mobile_fields=bool(config.get("include_mobile_fields", False)),
            request_timeout=_positive(config, "request_timeout", 300),
            poll_interval=_positive(config, "poll_interval", 5),
            poll_timeout=_positive(config, "poll_timeout", 3600),
            event_id=bool(config.get("event_id", True)),
            max_pending_exports=_pending_exports(config),
        )


def _positive(config: t.Mapping[str, t.Any], name: str, default: float) -> float:
    value = config.get(name, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: {value!r} is not a number of seconds") from None
    if number <= 0:
        raise ConfigError(f"{name}: {value!r} must be greater than 0 seconds")
    return number


def _pending_exports(config: t.Mapping[str, t.Any]) -> int:
    value = config.get("max_pending_exports", DEFAULT_PENDING_EXPORTS)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PENDING_EXPORTS:
        raise ConfigError(
            f"max_pending_exports: {value!r} must be a whole number from 1 (one export at a time) "
            f"to {MAX_PENDING_EXPORTS}"
        )
    return value


def _floor_day(moment: dt.datetime) -> dt.datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)
