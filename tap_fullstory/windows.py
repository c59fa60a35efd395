"""UTC-aligned export windows, the export delay, and the one canonical bookmark format.

A bookmark always means "the start of the first window not yet fully emitted". Windows are
[start, end) on EventStart, aligned to UTC multiples of the window length (which divides 24 h), so
every window lies inside one UTC day and re-running a range yields exactly the same windows.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

UTC = dt.timezone.utc
DAY = dt.timedelta(days=1)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


class ConfigError(ValueError):
    """A setting is invalid; the message is one line that names the setting."""


def parse_duration(value: str | int | float, setting: str) -> dt.timedelta:
    """Parse Go-style durations ('15m', '6h', '1h30m', '24h') or plain seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return dt.timedelta(seconds=value)
    text = str(value).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return dt.timedelta(seconds=float(text))
    parts = _DURATION.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise ConfigError(f"{setting}: {value!r} is not a duration (examples: '15m', '6h', '24h')")
    return dt.timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in parts))


def parse_datetime(value: str | dt.datetime, setting: str) -> dt.datetime:
    """Parse an RFC 3339 / ISO 8601 timestamp or date; naive values are taken as UTC."""
    if isinstance(value, dt.datetime):
        parsed = value
    else:
        text = str(value).strip()
        try:
            parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ConfigError(
                f"{setting}: {value!r} is not an RFC 3339 timestamp (example: 2024-01-31T00:00:00Z)"
            ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def fmt(moment: dt.datetime) -> str:
    """The canonical bookmark / ExportStart format: RFC 3339 UTC, whole seconds, 'Z'.

    Bookmarks are compared as strings by the SDK, so one fixed format is essential.
    """
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def floor_to(moment: dt.datetime, step: dt.timedelta) -> dt.datetime:
    """The latest UTC multiple of `step` at or before `moment` (aligned to the Unix epoch)."""
    steps = (moment - _EPOCH) // step
    return _EPOCH + steps * step


def validate_window(window: dt.timedelta) -> dt.timedelta:
    if not dt.timedelta(minutes=15) <= window <= DAY:
        raise ConfigError(f"export_window: {window} must be between 15m and 24h")
    if DAY % window:
        raise ConfigError(f"export_window: {window} must divide 24h evenly (e.g. 15m, 1h, 6h, 24h)")
    return window


@dataclass(frozen=True)
class Window:
    """One export window [start, end) on EventStart."""

    start: dt.datetime
    end: dt.datetime
    #: The legacy bundle this window is (bundles API only); opaque.
    bundle_id: int | None = None

    @property
    def label(self) -> str:
        return f"[{fmt(self.start)}, {fmt(self.end)})"

    @property
    def day(self) -> dt.date:
        return self.start.date()


def plan_windows(
    start: dt.datetime, window: dt.timedelta, *, limit: dt.datetime
) -> list[Window]:
    """Windows from `start` up to `limit` (exclusive bound on window ends).

    An unaligned start gets a short first window up to the next boundary (as hauser does); a
    limit that is not on a boundary (end_date) gets a short last window. Windows that would end
    after `limit` are not planned: they are exported by a later run.
    """
    windows: list[Window] = []
    cursor = start
    while cursor < limit:
        end = min(floor_to(cursor, window) + window, limit)  # > cursor: window > 0, cursor < limit
        windows.append(Window(cursor, end))
        cursor = end
    return windows


def export_limit(
    now: dt.datetime, delay: dt.timedelta, end_date: dt.datetime | None, window: dt.timedelta
) -> dt.datetime:
    """The latest instant a window may end at: settled data only (now - delay), capped by end_date.

    Windows must also end on a boundary unless end_date cuts them, so the delay bound is floored.
    """
    settled = floor_to(now - delay, window)
    return settled if end_date is None else min(settled, end_date)
