"""The tap's settings, declared once: name, type, default, title and description per setting
(`SETTINGS`), from which come both the JSON schema that `--about` and Meltano show
(`config_jsonschema`) and the typed, validated `Settings` the code reads.

Every invalid value stops the tap before any request, with one line that names the setting, so a
user can fix it without reading code.
"""

from __future__ import annotations

import datetime as dt
import typing as t
from dataclasses import dataclass
from urllib.parse import urlsplit

from singer_sdk import typing as th

from tap_fullstory.windows import ConfigError, parse_datetime, parse_duration, validate_window

SEGMENT_EXPORT, BUNDLES = "segment_export", "bundles"
DEFAULT_API_URL = {SEGMENT_EXPORT: "https://api.fullstory.com", BUNDLES: "https://export.fullstory.com"}
DEFAULT_WINDOW = "6h"
DEFAULT_DELAY = "24h"
DEFAULT_LOOKBACK = dt.timedelta(days=30)
#: Rows per BATCH part file. An SDK target reads a whole file into memory before loading it
#: (about 12 KB per FullStory event in meltanolabs-target-postgres), so this bounds the target's
#: memory whatever the size of a day; chosen by `make bench-e2e` (README, "End to end").
DEFAULT_PART_ROWS = 50_000
BATCH_FORMATS = ("parquet", "jsonl", "arrow")
#: Compression per format: gzip wraps a JSONL file; Parquet is always zstd inside; Arrow IPC
#: files compress their buffers (zstd or lz4_frame), which every pyarrow reader undoes.
BATCH_COMPRESSION = {"jsonl": ("gzip", "none"), "parquet": ("gzip", "none", "zstd"),
                     "arrow": ("zstd", "lz4", "none")}


@dataclass(frozen=True)
class Setting:
    """One setting as users see it (`--about`, Meltano, the README table)."""

    name: str
    type: t.Any  # a singer_sdk.typing type
    title: str
    description: str
    default: t.Any = None
    secret: bool = False
    required: bool = False
    allowed: tuple[str, ...] | None = None

    def prop(self) -> th.Property:
        return th.Property(
            self.name, self.type, required=self.required, secret=self.secret,
            default=self.default, title=self.title, description=self.description,
            allowed_values=list(self.allowed) if self.allowed else None)


SETTINGS: tuple[Setting, ...] = (
    Setting("api_key", th.StringType, "API key", required=True, secret=True,
            description="FullStory API key, sent as 'Authorization: Basic <key>'. Segment exports "
            "need an Admin key."),
    Setting("api_url", th.StringType, "API base URL",
            description="Base URL of the FullStory API. Default https://api.fullstory.com (EU: "
            "https://api.eu1.fullstory.com); for export_api=bundles the default is "
            "https://export.fullstory.com. Point it at the local emulator for tests."),
    Setting("export_api", th.StringType, "Export API", default=SEGMENT_EXPORT,
            allowed=(SEGMENT_EXPORT, BUNDLES),
            description="segment_export (the current Segment Export API) or bundles (the legacy "
            "Data Export bundles that hauser used until 2020)."),
    Setting("segment_id", th.StringType, "Segment ID", default="everyone",
            description="Segment to export (segment_export only); 'everyone' exports all events."),
    Setting("start_date", th.DateTimeType, "Start date",
            description="First instant to export (UTC) when there is no state. Default: 30 days "
            "before now, at midnight UTC."),
    Setting("end_date", th.DateTimeType, "End date",
            description="Optional exclusive end (UTC). Lets a backfill be split into parallel runs "
            "over disjoint ranges."),
    Setting("export_window", th.StringType, "Export window", default=DEFAULT_WINDOW,
            description="Length of one export, e.g. 1h, 6h, 24h: 15m to 24h, must divide 24h. "
            "Windows are aligned to UTC multiples of it."),
    Setting("export_delay", th.StringType, "Export delay", default=DEFAULT_DELAY,
            description="Only windows that ended at least this long ago are exported (FullStory "
            "values settle late). At least 1h."),
    Setting("include_mobile_fields", th.BooleanType, "Include mobile fields", default=False,
            description="Request and keep the 8 mobile app fields (AppName, ... "
            "EventMobileSourceFile) as columns; only for accounts with mobile apps."),
    Setting("event_id", th.BooleanType, "EventId key", default=True,
            description="Add a deterministic EventId and declare it the stream's key, so "
            "upserting targets never duplicate a re-exported window. Turn off for append-only "
            "loads without a key."),
    Setting("request_timeout", th.NumberType, "Request timeout", default=300,
            description="Seconds to wait on any one HTTP read before retrying."),
    Setting("poll_interval", th.NumberType, "Poll interval", default=5,
            description="Seconds between polls of an export operation."),
    Setting("poll_timeout", th.NumberType, "Poll timeout", default=3600,
            description="Seconds an export operation may stay pending before the run fails."),
    Setting("additional_headers", th.ObjectType(additional_properties=th.StringType),
            "Additional headers",
            description="Extra HTTP headers for every FullStory API call (not the signed "
            "download), like hauser's AdditionalHttpHeader."),
    Setting("batch_config", th.ObjectType(
        th.Property("encoding", th.ObjectType(
            th.Property("format", th.StringType, allowed_values=list(BATCH_FORMATS),
                        description="parquet, jsonl or arrow (Arrow IPC file format)."),
            th.Property("compression", th.StringType, allowed_values=sorted(
                {c for cs in BATCH_COMPRESSION.values() for c in cs}),
                        description="jsonl: gzip or none; arrow: zstd (default), lz4 or none; "
                        "parquet: always zstd inside the file."),
        )),
        th.Property("storage", th.ObjectType(
            th.Property("root", th.StringType, description="file://, s3:// or gs:// root."),
            th.Property("prefix", th.StringType, description="File name prefix."),
            th.Property("params", th.ObjectType(), description="fsspec storage options."),
        )),
        th.Property("batch_size", th.IntegerType,
                    description=f"Most rows per part file (default {DEFAULT_PART_ROWS:,}). A "
                    "day's BATCH message lists all its parts."),
    ), "Batch configuration",
            description="BATCH mode: one BATCH message and one STATE per UTC day, its rows in "
            "part files of at most batch_size rows (README: BATCH mode)."),
    Setting("c_scanner", th.BooleanType, "C scanner", default=True,
            description="Write rows with the C scanner when it was built at install time (the "
            "fast path; proved equal to the per-record path by the tests). false forces the "
            "per-record path for every row: for debugging, or to rule the scanner out."),
)
DEFAULTS: dict[str, t.Any] = {s.name: s.default for s in SETTINGS if s.default is not None}


def config_jsonschema() -> dict[str, t.Any]:
    """The settings' JSON schema, for `Tap.config_jsonschema`."""
    return th.PropertiesList(*(s.prop() for s in SETTINGS)).to_dict()


def _value(config: t.Mapping[str, t.Any], name: str) -> t.Any:
    """The configured value, or the declared default when it is absent, null or empty."""
    value = config.get(name)
    return DEFAULTS.get(name) if value is None or value == "" else value


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
    c_scanner: bool
    additional_headers: t.Mapping[str, str]
    batch: BatchSettings | None

    @classmethod
    def from_config(cls, config: t.Mapping[str, t.Any], *, now: dt.datetime | None = None) -> Settings:
        now = now or dt.datetime.now(dt.timezone.utc)
        api_key = str(config.get("api_key") or "").strip()
        if not api_key:
            raise ConfigError("api_key: missing; set it to a FullStory API key (Admin key for segment exports)")
        export_api = str(_value(config, "export_api"))
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
        window = validate_window(parse_duration(_value(config, "export_window"), "export_window"))
        delay = parse_duration(_value(config, "export_delay"), "export_delay")
        if delay < dt.timedelta(hours=1):
            raise ConfigError(f"export_delay: {delay} is below the minimum of 1h (FullStory data settles late)")
        segment_id = str(_value(config, "segment_id")).strip()
        return cls(
            api_key=api_key,
            api_url=api_url,
            export_api=export_api,
            segment_id=segment_id,
            start_date=start_date,
            end_date=end_date,
            export_window=window,
            export_delay=delay,
            include_mobile_fields=bool(_value(config, "include_mobile_fields")),
            request_timeout=_positive(config, "request_timeout"),
            poll_interval=_positive(config, "poll_interval"),
            poll_timeout=_positive(config, "poll_timeout"),
            event_id=bool(_value(config, "event_id")),
            c_scanner=bool(_value(config, "c_scanner")),
            additional_headers=_headers(config),
            batch=BatchSettings.from_config(config.get("batch_config")),
        )


@dataclass(frozen=True)
class BatchSettings:
    """`batch_config` as the day-batch writers read it (BATCH mode is on iff it is set)."""

    format: str
    compression: str
    part_rows: int

    @classmethod
    def from_config(cls, raw: t.Any) -> BatchSettings | None:
        if not raw:
            return None
        encoding = raw.get("encoding") if isinstance(raw, t.Mapping) else None
        if not isinstance(encoding, t.Mapping) or not isinstance(raw.get("storage"), t.Mapping):
            raise ConfigError("batch_config: needs encoding.format and storage.root, e.g. "
                              '{"encoding": {"format": "parquet"}, "storage": {"root": '
                              '"file:///data/batches"}}')
        fmt = str(encoding.get("format") or "").lower()
        if fmt not in BATCH_FORMATS:
            raise ConfigError(f"batch_config.encoding.format: {fmt!r} must be one of "
                              f"{', '.join(BATCH_FORMATS)}")
        allowed = BATCH_COMPRESSION[fmt]
        compression = str(encoding.get("compression") or allowed[0 if fmt == "arrow" else -1])
        if compression.lower() not in allowed:
            raise ConfigError(f"batch_config.encoding.compression: {compression!r} is not "
                              f"available for {fmt} (use {', '.join(allowed)})")
        size = raw.get("batch_size", DEFAULT_PART_ROWS)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigError(f"batch_config.batch_size: {size!r} must be a whole number of rows "
                              "(at least 1)")
        return cls(fmt, compression.lower(), size)


def _positive(config: t.Mapping[str, t.Any], name: str) -> float:
    value = _value(config, name)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: {value!r} is not a number of seconds") from None
    if number <= 0:
        raise ConfigError(f"{name}: {value!r} must be greater than 0 seconds")
    return number


def _headers(config: t.Mapping[str, t.Any]) -> dict[str, str]:
    headers = _value(config, "additional_headers") or {}
    if not isinstance(headers, t.Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        raise ConfigError("additional_headers: must map header names to text values, e.g. "
                          '{"X-Team": "data"}')
    return dict(headers)


def _floor_day(moment: dt.datetime) -> dt.datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)
