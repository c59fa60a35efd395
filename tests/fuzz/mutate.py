"""A JSON-aware mutator for `make fuzz`: byte mutations alone mostly break the JSON, and a broken
chunk is only refused, never compared with the reference. Here rows stay rows: a field set to a
value at an edge (numbers around a double's and int64's limits, -0, escapes, timestamps not in
FullStory's form, known fields in another case), a value that does not fit its field's type (the
misfit rule), keys removed, rows repeated or swapped, numbers
written in texts no encoder writes, each row written by json or orjson with varying spacing. A
share of the inputs still gets libFuzzer's own byte mutations.
"""

from __future__ import annotations

import json
import random
import typing as t

import orjson

from tap_fullstory.fields import Splitter, singer_schema
from tap_fullstory.writers.columns import property_kind

FIELDS = Splitter(mobile=True).column_names
_KIND = {name: property_kind(prop)
         for name, prop in singer_schema(mobile=True)["properties"].items()}
#: Values that fit a known field's type (most of the time a field gets one: a chunk that only
#: ever held misfits would only be refused).
FITTING: dict[str, list[t.Any]] = {
    "integer": [0, 1, -1, 7, 2**53 + 1, 2**63 - 1, -(2**63), None],
    "number": [0.5, -0.0, 0.1 + 0.2, 1e-7, 1e21, 3, -1, 0, 1e300, 5e-324, 2**63, None],
    "string": ["", "x", "\u00e9", "\U0001F600", "\u2028", "\x00\x1f\x7f", '"\\/', "a\nb", None],
    "date-time": ["2024-01-01T00:00:01.000Z", "2024-01-01T00:00:01.000Z", "2023-12-31T23:59:59.999Z",
                  "9999-12-31T23:59:59.999Z", None],
}
#: Values that do not fit a field of each type (the misfit rule: C must take them as the
#: reference does, null in the column and the original in CustomVars, or refuse).
MISFITS: dict[str, list[t.Any]] = {
    "integer": ["", "5", "yesterday", 1.5, 2.0, 1e300, 2**63, 2**64 - 1, True, [1], ["a", []]],
    "number": ["", "0.5", True, False, [0.5], 2**53 + 1, -(2**53) - 1, 2**63, 2**64 - 1],
    "string": [0, -1, 1.5, True, False, [], ["x"], 2**63],
    "date-time": ["", "yesterday", "abc", "\u00e9t\u00e9", 1_704_067_200_000, 1.5, True, [],
                  "2024-13-01T00:00:00.000Z", "2024-01-01T00:00:00+01:00", "2024",
                  "2024-01-01T00:00:00.1234567Z", "0000-01-01T00:00:00.000Z"],
}
CUSTOM = ["evt_a_str", "user_b_int", "page_c_real", "evt_d_strs", "evt_e_bool", "CustomVars",
          "customvars", "caf\u00e9", "", "k" * 40]
VALUES: list[t.Any] = [
    0, 1, -1, 7, 2**53 + 1, 2**63 - 1, -(2**63), 2**64 - 1, 2**64, 10**30, 0.5, -0.0, 0.1 + 0.2,
    1e-7, 1e16, 1e21, 1e300, 5e-324, 1.7976931348623157e308, True, False, None, "", "x", "\u00e9",
    "\U0001F600", "\u2028", "\x00\x1f\x7f", '"\\/', "a\nb\tc\r", [], [1, "a"], [[1], []], {"a": 1},
    "2024-01-01T00:00:01.000Z", "2024-01-01T00:00:01Z", "2024-02-30T00:00:01.000Z",
    "2024-01-01 00:00:01.000Z", "9999-12-31T23:59:59.999Z",
]
#: Number texts written as they are (no encoder writes these; the scanner must read or refuse).
RAW = [b"-0", b"-0.0", b"1E+2", b"1e400", b"-1e999", b"1e-400", b"-1e-400", b"0.1e1", b"1" * 30,
       b"7" * 400 + b".5", b"-0e0", b"100000000000000000000000.5", b"9.999999999999999e22",
       b"1.7976931348623159e308", b"4.9e-324", b"18446744073709551616", b"-9223372036854775809"]


def _raw_marker(i: int) -> str:
    return f"\x00RAW{i}\x00"


def _key(rng: random.Random) -> str:
    pick = rng.random()
    if pick < 0.6:
        return rng.choice(FIELDS)
    if pick < 0.65:  # a known field in another case
        name = rng.choice(FIELDS)
        return name.lower() if rng.random() < 0.5 else name.upper()
    return rng.choice(CUSTOM)


def _rows(data: bytes) -> list[t.Any]:
    rows: list[t.Any] = []
    for line in data.split(b"\n"):
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError:
            row = line
        rows.append(row if isinstance(row, dict) else line)
    return [row for row in rows if row != b""]


def _write(rng: random.Random, row: t.Any) -> bytes:
    if not isinstance(row, dict):
        return bytes(row)
    try:
        text = orjson.dumps(row) if rng.random() < 0.5 else b""
    except TypeError:  # an integer beyond 64 bits: json writes it
        text = b""
    if not text:
        spaced = rng.random() < 0.2
        text = json.dumps(row, ensure_ascii=rng.random() < 0.3,
                          separators=(", ", " : ") if spaced else (",", ":")).encode()
    for i, raw in enumerate(RAW):  # the markers, then the raw texts in their place
        marker = json.dumps(_raw_marker(i)).encode()
        if marker in text:
            text = text.replace(marker, raw)
        marker = orjson.dumps(_raw_marker(i))
        if marker in text:
            text = text.replace(marker, raw)
    return text


def mutate(data: bytes, max_size: int, seed: int) -> bytes:
    """atheris's custom mutator: (input, size limit, seed) -> a new input."""
    import atheris

    rng = random.Random(seed)
    if rng.random() < 0.15:
        return bytes(atheris.Mutate(data, max_size))
    # lines that are not JSON objects (byte mutations broke them) mostly go
    rows = [row for row in _rows(data) if isinstance(row, dict) or rng.random() < 0.3]
    rows = rows or [{"EventStart": "2024-01-01T00:00:01.000Z"}]
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(rows))
        row = rows[i]
        op = rng.random()
        if op < 0.15:  # a repeat: EventId ordinals
            rows.insert(i, dict(row) if isinstance(row, dict) else row)
        elif op < 0.2 and len(rows) > 1:  # swapped rows: EventStart order
            j = rng.randrange(len(rows))
            rows[i], rows[j] = rows[j], rows[i]
        elif not isinstance(row, dict):
            continue
        elif op < 0.3 and row:
            del row[rng.choice(list(row))]
        elif op < 0.4:
            row[_key(rng)] = _raw_marker(rng.randrange(len(RAW)))
        else:
            key = _key(rng)
            fitting = FITTING.get(_KIND.get(key, ""))
            misfits = MISFITS.get(_KIND.get(key, ""))
            pick = rng.random()
            row[key] = rng.choice(fitting if fitting and pick < 0.7 else
                                  misfits if misfits and pick < 0.85 else VALUES)
    end = b"\r\n" if rng.random() < 0.05 else b"\n"
    lines = [_write(rng, row) for row in rows]
    while len(lines) > 1 and sum(map(len, lines)) + len(end) * len(lines) > max_size:
        del lines[rng.randrange(len(lines))]  # whole rows out, rather than a row cut short
    out = end.join(lines) + (end if rng.random() < 0.9 else b"")
    return out[:max_size]
