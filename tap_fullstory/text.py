"""Text that decoders or loaders reject: lone surrogate escapes and NUL characters.

Two facts shape this module:

- JSON allows a lone surrogate escape (`"\\ud83d"`: half of a UTF-16 pair, what a JavaScript
  string cut in the middle of an emoji leaves), orjson refuses it, and no UTF-8 loader can store
  it. `loads` decodes such a row with each lone surrogate replaced by U+FFFD, as a browser's
  `TextEncoder` does; everything else is orjson's own verdict.
- A NUL character can only reach a JSON text as the escape `\\u0000` (a raw NUL byte is invalid
  inside a JSON string). PostgreSQL and Redshift cannot store NUL in text; `strip_nul` removes it.
"""

from __future__ import annotations

import re
import typing as t

import orjson

#: Every escape in a JSON string, left to right (so an escaped backslash is never mistaken for the
#: start of another escape); groups: a high surrogate, the low one after it, a lone low one.
_ESCAPE = re.compile(
    rb"\\(?:u([dD][89abAB][0-9a-fA-F]{2})(\\u[dD][c-fC-F][0-9a-fA-F]{2})?|u([dD][c-fC-F][0-9a-fA-F]{2})|.)",
    re.S)
#: The only way a NUL reaches a JSON text. A literal backslash before "u0000" matches too: a
#: row that matches is then scanned for NUL itself (`has_nul`), so that costs time, never a value.
NUL_ESCAPE = re.compile(rb"\\u0000")


def _repair(match: re.Match[bytes]) -> bytes:
    high, low, lone_low = match.groups()
    if (high and not low) or lone_low:
        return b"\\ufffd"
    return match[0]


def loads(line: bytes) -> t.Any:
    """orjson.loads, except that lone surrogate escapes decode as U+FFFD (see the module's
    docstring). Raises orjson.JSONDecodeError (a ValueError) for anything else orjson refuses."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        if b"\\u" not in line:
            raise
        repaired = _ESCAPE.sub(_repair, line)
        if repaired == line:
            raise
        return orjson.loads(repaired)


def has_nul(value: t.Any) -> bool:
    """Whether a decoded value holds a NUL anywhere: in a string, a list, an object's keys or values."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(map(has_nul, value))
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    return False


def strip_nul(value: t.Any) -> t.Any:
    """The value with every NUL removed, in strings at any depth and in object keys."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [strip_nul(item) for item in value]
    if isinstance(value, dict):
        return {strip_nul(k): strip_nul(v) for k, v in value.items()}
    return value
