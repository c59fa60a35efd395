"""EventId: a deterministic key per event, identical when the same window is exported again.

FullStory exports carry no event id. The key hashes the fields that identify an event and do not
settle late (page durations, IndvId linkage and counters do, so they are left out) and that both
export APIs spell alike (the selector was renamed and re-encoded, so it is left out), plus an
ordinal among rows identical on those fields within the window: true repeats stay distinct, and a
re-export maps to the same keys.

Memory stays flat: exports are sorted by EventStart, and rows identical on the identity fields
share their EventStart, so the ordinal counter only needs the current EventStart's rows. An
out-of-order row raises `OutOfOrderError`; the stream then re-reads the window with a keyer that
counts over the whole window.
"""

from __future__ import annotations

import hashlib
import typing as t

import orjson

IDENTITY_FIELDS: tuple[str, ...] = (
    "UserId", "SessionId", "PageId", "EventStart", "EventType", "EventSubType",
    "EventCustomName", "EventTargetText", "EventPageOffset", "ReqUrl", "ReqMethod",
)


_blake2b = hashlib.blake2b
_dumps = orjson.dumps


class OutOfOrderError(Exception):
    """Rows are not sorted by EventStart; bounded counting is no longer exact."""


class EventKeyer:
    """Computes EventId for the rows of one window, in export order."""

    __slots__ = ("_counts", "_current", "_whole_window")

    def __init__(self, *, whole_window: bool = False, after: t.Any = None) -> None:
        """`after`: the EventStart of the row just before, when keying starts mid-window right
        where EventStart changes (the chunked writers key each chunk of a window on its own)."""
        self._whole_window = whole_window
        self._counts: dict[str, int] = {}
        self._current: t.Any = after

    def key(self, cols: dict[str, t.Any]) -> str:
        event_start = cols.get("EventStart")
        if not self._whole_window and event_start != self._current:
            if self._current is not None and event_start is not None and (
                str(event_start) < str(self._current)
            ):
                raise OutOfOrderError(f"EventStart {event_start} after {self._current}")
            self._counts.clear()
            self._current = event_start
        digest = _blake2b(_dumps(list(map(cols.get, IDENTITY_FIELDS))), digest_size=16).hexdigest()
        ordinal = self._counts.get(digest, 0)
        self._counts[digest] = ordinal + 1
        if ordinal == 0:
            return digest
        return _blake2b(bytes.fromhex(digest) + ordinal.to_bytes(8, "big"),
                        digest_size=16).hexdigest()
