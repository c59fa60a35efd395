"""Time and number helpers of the emulator: RFC 3339 text to exact microseconds, FullStory's timestamp
forms, and floats that keep their source text so replayed rows are written back verbatim."""

from __future__ import annotations

import datetime as dt
import re
import time
import typing as t

import orjson

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})")


# ---------------------------------------------------------------- time helpers
def parse_rfc3339_us(value: str) -> int:
    """RFC 3339 text -> integer microseconds since the epoch (exact, no float rounding)."""
    m = _RFC3339.fullmatch(value.strip())
    if not m:
        raise ValueError(f"not an RFC 3339 timestamp: {value!r}")
    tz = "+00:00" if m[4] in "Zz" else m[4]
    base = dt.datetime.fromisoformat(f"{m[1]}T{m[2]}{tz}")
    frac = (m[3] or "")[:6].ljust(6, "0")
    return (base - _EPOCH) // dt.timedelta(seconds=1) * 1_000_000 + int(frac)


def to_us(value: t.Any) -> int | None:
    """Accept RFC 3339 text, a datetime or unix seconds; ``None``/``""`` mean unbounded."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return (value - _EPOCH) // dt.timedelta(microseconds=1)
    if isinstance(value, (int, float)):
        return round(value * 1_000_000)
    return parse_rfc3339_us(str(value))


def format_ms(ms: int) -> str:
    """FullStory's timestamp form: UTC, milliseconds, trailing zeros kept."""
    s, r = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + f".{r:03d}Z"


def format_us(us: int) -> str:
    """Operation timestamps carry microseconds."""
    s, r = divmod(us, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + f".{r:06d}Z"


class VerbatimFloat(float):
    """A float that remembers its source text, so re-serialisation keeps numbers verbatim."""

    __slots__ = ("text",)
    text: str

    def __new__(cls, text: str) -> VerbatimFloat:
        obj = super().__new__(cls, text)
        obj.text = text
        return obj


def orjson_default(obj: t.Any) -> t.Any:
    """orjson hook: write a VerbatimFloat's original literal."""
    if isinstance(obj, VerbatimFloat):
        return orjson.Fragment(obj.text.encode())
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def parse_float(text: str) -> float:
    value = float(text)
    return value if repr(value) == text else VerbatimFloat(text)
