"""records.py, exactly: the record of a row, the window columns, EventId, skip, NUL, chunks."""

from __future__ import annotations

import pytest

from tap_fullstory.keys import EventKeyer, OutOfOrderError
from tap_fullstory.records import RecordMaker

START, END = "2024-01-01T00:00:00Z", "2024-01-01T06:00:00Z"
R1 = b'{"EventStart":"2024-01-01T00:00:01.000Z","EventType":"click","UserId":7,"user_plan_str":"pro"}'
R2 = b'{"EventStart":"2024-01-01T00:00:02.000Z","EventType":"load","UserId":7}'
NUL = (b'{"EventStart":"2024-01-01T00:00:03.000Z","EventType":"click","UserId":8,'
       b'"EventTargetText":"a\\u0000b","user_x\\u0000_str":["c\\u0000"]}')
LITERAL = b'{"EventStart":"2024-01-01T00:00:04.000Z","EventType":"click","PageUrl":"\\\\u0000"}'


def maker(**kwargs) -> RecordMaker:
    return RecordMaker(**{"mobile": False, "use_keys": True, "export_start": START,
                          "export_end": END, **kwargs})


def test_a_record() -> None:
    (record,) = maker().records([RecordMaker.loads(R1)])
    assert record["EventStart"] == "2024-01-01T00:00:01.000Z" and record["UserId"] == 7
    assert record["CustomVars"] == {"user_plan_str": "pro"}
    assert (record["ExportStart"], record["ExportEnd"]) == (START, END)
    assert record["EventId"] == EventKeyer().key(record)
    assert len(record["EventId"]) == 32


def test_without_keys_there_is_no_event_id() -> None:
    (record,) = maker(use_keys=False).records([RecordMaker.loads(R1)])
    assert "EventId" not in record


def test_skip_keys_the_skipped_rows() -> None:
    rows = [RecordMaker.loads(R1)] * 3
    every = [r["EventId"] for r in maker().records(rows)]
    assert len(set(every)) == 3
    assert [r["EventId"] for r in maker().records(rows, skip=2)] == every[2:]
    assert [r["EventId"] for r in maker().records(rows, EventKeyer(), skip=0)] == every


def test_nul_is_stripped_counted_and_told() -> None:
    told: list[int] = []
    m = maker(on_nul=told.append)
    records = list(m.chunk_records(b"\n".join([R1, NUL, NUL, LITERAL]), None))
    assert records[1]["EventTargetText"] == "ab"
    assert records[1]["CustomVars"] == {"user_x_str": ["c"]}
    assert records[3]["PageUrl"] == "\\u0000"  # a literal backslash-u0000, no NUL
    assert told == [1, 2] and m.nul_rows == 2


def test_nul_is_kept_with_keep() -> None:
    m = maker(strip_nul=False)
    records = list(m.chunk_records(b"\n".join([R1, NUL]), None))
    assert records[1]["EventTargetText"] == "a\x00b"
    assert records[1]["CustomVars"] == {"user_x\x00_str": ["c\x00"]}
    assert m.nul_rows == 1
    stripped = list(maker().chunk_records(b"\n".join([R1, NUL]), None))
    assert [r["EventId"] for r in stripped] == [r["EventId"] for r in records]


def test_custom_vars_keys_stay_sorted_after_stripping() -> None:
    row = b'{"EventStart":"2024-01-01T00:00:03.000Z","z_str":"\\u0000","a\\u0000_str":"x","m_str":"y"}'
    (record,) = maker().chunk_records(row, None)
    assert list(record["CustomVars"]) == ["a_str", "m_str", "z_str"]


def test_loads_marks_only_rows_that_may_hold_nul() -> None:
    assert type(RecordMaker.loads(R1)) is dict
    assert type(RecordMaker.loads(NUL)) is not dict and isinstance(RecordMaker.loads(NUL), dict)
    assert RecordMaker.loads(b'"\\u0000"') == "\x00"  # not an object: not marked
    assert RecordMaker.loads(b'{"s":"\\ud83d"}') == {"s": "\ufffd"}
    with pytest.raises(ValueError):
        RecordMaker.loads(b"{nope")


def test_chunk_records() -> None:
    chunk = b"\n" + R1 + b"\n\n" + R2 + b"\n  \n"
    records = list(maker().chunk_records(chunk, None))
    assert [r["EventType"] for r in records] == ["click", "load"]
    with pytest.raises(OutOfOrderError):
        list(maker().chunk_records(R1, "2024-01-01T00:00:05.000Z"))
    with pytest.raises(ValueError, match=r"^not a JSON object$"):
        list(maker().chunk_records(R1 + b"\n[1]", None))
    with pytest.raises(ValueError):
        list(maker().chunk_records(b"{nope", None))
    again = list(maker().chunk_records(R1 + b"\n" + R1, "2024-01-01T00:00:01.000Z"))
    assert again[0]["EventId"] != again[1]["EventId"]


def test_a_nul_in_a_column_only_and_rows_with_blanks() -> None:
    told: list[int] = []
    row = b'{"EventStart":"2024-01-01T00:00:05.000Z","EventTargetText":"x\\u0000 y z","user_a_str":"b c"}'
    (record,) = maker(on_nul=told.append).chunk_records(row + b"\n", None)
    assert record["EventTargetText"] == "x y z" and record["CustomVars"] == {"user_a_str": "b c"}
    assert told == [1]


def test_mobile_fields_and_a_given_catalogue() -> None:
    text = b'{"EventStart":"2024-01-01T00:00:05.000Z","AppName":"shop","Foo":1}'
    (mobile,) = maker(mobile=True).records([RecordMaker.loads(text)])
    (web,) = maker(mobile=False).records([RecordMaker.loads(text)])
    assert mobile["AppName"] == "shop" and "AppName" not in mobile["CustomVars"]
    assert "AppName" not in web and web["CustomVars"]["AppName"] == "shop"
    own_fields = [("EventStart", "date-time"), ("Foo", "integer")]
    (own,) = maker(fields=own_fields).records([RecordMaker.loads(text)])
    assert own["Foo"] == 1 and own["CustomVars"] == {"AppName": "shop"}
