"""keys.py, exactly: the hash, the ordinals, their reset per EventStart, the order check."""

from __future__ import annotations

import hashlib
import json

import pytest

from tap_fullstory.keys import IDENTITY_FIELDS, EventKeyer, OutOfOrderError

ROW = {"UserId": 7, "SessionId": 8, "PageId": 9, "EventStart": "2024-01-01T00:00:01.000Z",
       "EventType": "click", "EventTargetText": "Buy", "EventPageOffset": 3, "PageDuration": 5}


def digest(row: dict, ordinal: int = 0) -> str:
    raw = hashlib.blake2b(json.dumps([row.get(f) for f in IDENTITY_FIELDS], separators=(",", ":"),
                                     ensure_ascii=False).encode(), digest_size=16).digest()
    if ordinal:
        raw = hashlib.blake2b(raw + ordinal.to_bytes(8, "big"), digest_size=16).digest()
    return raw.hex()


def test_fields() -> None:
    assert IDENTITY_FIELDS == ("UserId", "SessionId", "PageId", "EventStart", "EventType",
                               "EventSubType", "EventCustomName", "EventTargetText",
                               "EventPageOffset", "ReqUrl", "ReqMethod")


def test_key_and_ordinals() -> None:
    keyer = EventKeyer()
    assert [keyer.key(dict(ROW)) for _ in range(3)] == [digest(ROW), digest(ROW, 1), digest(ROW, 2)]
    other = {**ROW, "EventPageOffset": 4}
    assert keyer.key(other) == digest(other)
    assert keyer.key({**ROW, "PageDuration": 6}) == digest(ROW, 3)  # not an identity field


def test_ordinals_restart_when_event_start_changes() -> None:
    keyer = EventKeyer()
    later = {**ROW, "EventStart": "2024-01-01T00:00:02.000Z"}
    assert [keyer.key(ROW), keyer.key(later), keyer.key(later)] == [
        digest(ROW), digest(later), digest(later, 1)]


def test_rows_out_of_order() -> None:
    keyer = EventKeyer()
    keyer.key({**ROW, "EventStart": "2024-01-01T00:00:02.000Z"})
    with pytest.raises(OutOfOrderError, match=r"^EventStart 2024-01-01T00:00:01\.000Z after "
                                              r"2024-01-01T00:00:02\.000Z$"):
        keyer.key(ROW)
    assert EventKeyer(after="2024-01-01T00:00:01.000Z").key(ROW) == digest(ROW)
    with pytest.raises(OutOfOrderError):
        EventKeyer(after="2024-01-01T00:00:02.000Z").key(ROW)


def test_whole_window_counts_across_event_starts() -> None:
    keyer = EventKeyer(whole_window=True)
    later = {**ROW, "EventStart": "2024-01-01T00:00:02.000Z"}
    assert [keyer.key(later), keyer.key(ROW), keyer.key(later), keyer.key(ROW)] == [
        digest(later), digest(ROW), digest(later, 1), digest(ROW, 1)]


def test_rows_without_event_start() -> None:
    keyer = EventKeyer()
    bare = {"UserId": 1}
    assert [keyer.key(ROW), keyer.key(bare), keyer.key(bare)] == [
        digest(ROW), digest(bare), digest(bare, 1)]
    assert keyer.key(ROW) == digest(ROW)  # a new EventStart again: counts restart


def test_the_same_event_start_after_a_start_keeps_counting() -> None:
    keyer = EventKeyer(after=ROW["EventStart"])
    assert [keyer.key(ROW), keyer.key(ROW)] == [digest(ROW), digest(ROW, 1)]
