"""The FullStory export field catalogue, its Singer/Arrow schemas and hauser's CustomVars split.

The catalogue is data, not code: a new FullStory field is one line here. Order follows hauser's
``BaseExportFields`` so that column order matches tables hauser created.
"""

from __future__ import annotations

import datetime as dt
import re
import typing as t

INT, FLOAT, STR, TS = "integer", "number", "string", "date-time"

#: The 58 standard export fields, in hauser's column order: (name, kind).
STANDARD_FIELDS: tuple[tuple[str, str], ...] = (
    ("IndvId", INT), ("UserId", INT), ("SessionId", INT), ("PageId", INT),
    ("UserCreated", TS), ("UserAppKey", STR), ("UserDisplayName", STR), ("UserEmail", STR),
    ("EventStart", TS), ("EventType", STR), ("EventSubType", STR), ("EventCustomName", STR),
    ("EventTargetText", STR), ("EventTargetSelector", STR), ("EventPageOffset", INT),
    ("EventSessionOffset", INT), ("EventModFrustrated", INT), ("EventModDead", INT),
    ("EventModError", INT), ("EventModSuspicious", INT), ("EventVarErrorKind", STR),
    ("EventVarFields", STR), ("EventWebSourceFileUrl", STR), ("EventFirstInputDelay", INT),
    ("EventCumulativeLayoutShift", FLOAT), ("SessionStart", TS), ("PageName", STR),
    ("PageStart", TS), ("PageDuration", INT), ("PageActiveDuration", INT), ("PageUrl", STR),
    ("PageRefererUrl", STR), ("PageIp", STR), ("PageLatLong", STR), ("PageUserAgent", STR),
    ("PageBrowser", STR), ("PageBrowserVersion", STR), ("PageDevice", STR), ("PagePlatform", STR),
    ("PageOperatingSystem", STR), ("PageScreenWidth", INT), ("PageScreenHeight", INT),
    ("PageViewportWidth", INT), ("PageViewportHeight", INT), ("PageNumEvents", INT),
    ("PageNumDerivedEvents", INT), ("PageNumInfos", INT), ("PageNumWarnings", INT),
    ("PageNumErrors", INT), ("PageClusterId", INT), ("PageMaxScrollDepthPercent", INT),
    ("LoadDomContentTime", INT), ("LoadEventTime", INT), ("LoadFirstPaintTime", INT),
    ("LoadLargestPaintTime", INT), ("ReqUrl", STR), ("ReqMethod", STR), ("ReqStatus", INT),
)

#: Names the legacy Data Export bundles used; they keep their own columns.
LEGACY_FIELDS: tuple[tuple[str, str], ...] = (("PageAgent", STR), ("EventTargetSelectorTok", STR))

#: hauser's ``MobileFields``: requested and known only with ``include_mobile_fields``.
MOBILE_FIELDS: tuple[tuple[str, str], ...] = (
    ("AppName", STR), ("AppPackageName", STR), ("AppDeviceModel", STR), ("AppDeviceVendor", STR),
    ("AppVersion", STR), ("AppOsVersion", STR), ("AppViewName", STR),
    ("EventMobileSourceFile", STR),
)

#: Wildcards that make the segment export include every custom variable.
CUSTOM_VAR_WILDCARDS: tuple[str, ...] = ("user_*", "evt_*", "page_*")

#: The fields of a ``TYPE_INDIVIDUAL`` export (FullStory's export-fields reference), one row per
#: individual. Durations are seconds; FullStory's own SDK types them as JavaScript numbers, so
#: they are ``number`` here (an integer fits, a fraction is never rejected).
INDIVIDUAL_FIELDS: tuple[tuple[str, str], ...] = (
    ("IndvId", INT), ("Created", TS), ("Uid", STR), ("DisplayName", STR), ("Email", STR),
    ("NumSessions", INT), ("NumPages", INT), ("NumEvents", INT), ("TotalSec", FLOAT),
    ("ActiveSec", FLOAT), ("AvgSessionSec", FLOAT), ("AvgSessionActiveSec", FLOAT),
    ("MaxSessionSec", FLOAT), ("LastSessionNumPages", INT), ("LastSessionNumEvents", INT),
    ("LastSessionSec", FLOAT), ("LastSessionActiveSec", FLOAT), ("LastSessionStart", TS),
    ("LastPage", STR), ("LastIp", STR), ("LastLatLong", STR), ("LastEventStart", TS),
    ("LastBrowser", STR), ("LastDevice", STR), ("LastPlatform", STR),
    ("LastOperatingSystem", STR),
)
INDIVIDUAL_KEY = "IndvId"

CUSTOM_VARS = "CustomVars"
EXPORT_START = "ExportStart"
EXPORT_END = "ExportEnd"
EVENT_ID = "EventId"


def export_fields(*, mobile: bool) -> list[tuple[str, str]]:
    """Every export column the tap knows for this configuration, in table order."""
    return [*STANDARD_FIELDS, *LEGACY_FIELDS, *(MOBILE_FIELDS if mobile else ())]


def requested_fields(*, mobile: bool) -> list[str]:
    """The ``fields`` list sent to the segment export: standard, wildcards, then mobile (as hauser)."""
    names = [name for name, _ in STANDARD_FIELDS]
    names += CUSTOM_VAR_WILDCARDS
    if mobile:
        names += [name for name, _ in MOBILE_FIELDS]
    return names


def individual_request_fields() -> list[str]:
    """``fields`` for an individuals export with ``export_fields: hauser``: the catalogue, then
    every user variable (hauser never exported individuals; this is the same explicit style)."""
    return [name for name, _ in INDIVIDUAL_FIELDS] + ["user_*"]


def _nullable(kind: str) -> dict[str, t.Any]:
    if kind == TS:
        return {"type": ["string", "null"], "format": "date-time"}
    return {"type": [kind, "null"]}


def singer_schema(*, mobile: bool, event_id: bool = True) -> dict[str, t.Any]:
    """The ``events`` stream's JSON Schema: typed catalogue columns, CustomVars, export window."""
    props: dict[str, t.Any] = {}
    if event_id:
        props[EVENT_ID] = {"type": ["string"], "description": "Deterministic event key."}
    for name, kind in export_fields(mobile=mobile):
        props[name] = _nullable(kind)
    _add_custom_and_window(props)
    return {"type": "object", "properties": props}


def individuals_schema() -> dict[str, t.Any]:
    """The ``individuals`` stream's JSON Schema: typed catalogue columns (``IndvId`` is the key,
    never null), CustomVars (user variables and unknown fields), the activity range exported."""
    props: dict[str, t.Any] = {
        name: {"type": ["integer"]} if name == INDIVIDUAL_KEY else _nullable(kind)
        for name, kind in INDIVIDUAL_FIELDS
    }
    _add_custom_and_window(props)
    return {"type": "object", "properties": props}


def _add_custom_and_window(props: dict[str, t.Any]) -> None:
    props[CUSTOM_VARS] = {
        "type": ["object", "null"],
        "properties": {},
        "additionalProperties": True,
        "description": "Every field that is not a known export field, with its original key and value.",
    }
    props[EXPORT_START] = {"type": ["string"], "format": "date-time"}
    props[EXPORT_END] = {"type": ["string"], "format": "date-time"}


class Splitter:
    """Applies hauser's rule: known fields (matched case-insensitively) fill columns, the rest go to CustomVars.

    Timestamps are normalised to RFC 3339 UTC keeping their fraction. Values are never coerced:
    an int stays an int, a list stays a list.
    """

    __slots__ = ("_columns", "_exact_keys", "_lower", "_route", "_ts")

    def __init__(self, *, mobile: bool, fields: t.Sequence[tuple[str, str]] | None = None) -> None:
        """`fields`: the known columns (default: the event catalogue for this `mobile`)."""
        fields = export_fields(mobile=mobile) if fields is None else fields
        self._columns: tuple[str, ...] = tuple(name for name, _ in fields)
        self._exact_keys = frozenset(self._columns)
        # CUSTOM_VARS is known too, so that a "customvars" key is recognised (and kept as custom).
        self._lower: dict[str, str] = {n.lower(): n for n in (*self._columns, CUSTOM_VARS)}
        #: key -> column name ("" = custom var); custom var names repeat, so this stays small.
        self._route: dict[str, str] = {}
        self._ts: tuple[str, ...] = tuple(name for name, kind in fields if kind == TS)

    @property
    def column_names(self) -> list[str]:
        return list(self._columns)

    @property
    def timestamp_names(self) -> tuple[str, ...]:
        """The columns whose values `split` normalises to RFC 3339 UTC."""
        return self._ts

    def split(self, row: dict[str, t.Any]) -> tuple[dict[str, t.Any], dict[str, t.Any]]:
        """Return (columns, custom vars) for one export row. `row` itself becomes the columns.

        The hot path is set arithmetic in C: only keys that are not exact column names (custom
        vars, or known fields in another case) are looked at one by one.
        """
        custom: dict[str, t.Any] = {}
        extra = row.keys() - self._exact_keys
        if extra:
            route = self._route
            for key in sorted(extra):  # sorted: deterministic, and hauser's CustomVars order
                try:
                    name = route[key]
                except KeyError:
                    name = route.setdefault(key, self._lower.get(key.lower(), ""))
                if name and name != CUSTOM_VARS:
                    row[name] = row.pop(key)
                else:
                    # Custom vars, unknown fields, and even a "CustomVars" key (never ours).
                    custom[key] = row.pop(key)
        for name in self._ts:
            value = row.get(name)
            if value is not None and not (
                isinstance(value, str) and len(value) == 24 and value[-1] == "Z" and value[19] == "."
            ):
                row[name] = normalize_timestamp(value)
        return row, custom


#: RFC 3339 date-time (a space for T, as RFC 3339 allows; no zone means UTC), at most
#: microseconds: a finer fraction would be truncated, so such a text is not normalised.
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:[Zz]|[+-]\d{2}:\d{2})?", re.ASCII)
_UTC = dt.timezone.utc
_fromisoformat = dt.datetime.fromisoformat


def rfc3339_utc(value: str) -> str | None:
    """An RFC 3339 date-time as RFC 3339 UTC with 'Z', keeping its fraction (milliseconds, or
    microseconds when finer); None when the text is not one (or falls outside years 1-9999 in
    UTC). FullStory's own form (2020-08-27T06:20:26.913Z) comes back as the same object."""
    if len(value) == 24 and value[10] == "T" and value[23] == "Z" and value[19] == ".":
        # FullStory's form (the regex's digits, checked faster): UTC already, kept as it is
        if not (value[4] == value[7] == "-" and value[13] == value[16] == ":"
                and value.isascii() and value[20:23].isdigit()):
            return None
        try:
            _fromisoformat(value[:23])
        except ValueError:
            return None
        return value
    if not _RFC3339.fullmatch(value):
        return None
    try:
        parsed = _fromisoformat(value.upper().replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=_UTC)
        parsed = parsed.astimezone(_UTC)
    except (ValueError, OverflowError):
        return None
    spec = "milliseconds" if parsed.microsecond % 1000 == 0 else "microseconds"
    return parsed.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def normalize_timestamp(value: t.Any) -> t.Any:
    """RFC 3339 UTC with 'Z' (`rfc3339_utc`); any other value is passed on as it is (the misfit
    rule, `fits`, then decides)."""
    if not isinstance(value, str):
        return value
    normal = rfc3339_utc(value)
    return value if normal is None else normal
