"""orjson's fallback for the few values JSON has no type for, shared by every writer."""

from __future__ import annotations

import decimal
import typing as t


def default(value: t.Any) -> t.Any:
    """A JSON-native stand-in: Decimal -> float, sets and tuples -> list, bytes -> text."""
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
