"""Writes the fuzzer's seed corpus (tests/fuzz/corpus/) and the regression inputs
(tests/fuzz/regressions/). Run once; the files are committed, so the replay and `make fuzz` need
neither the emulator nor the hauser fixtures:

    python -m tests.fuzz.make_corpus [--hauser DIR]

Seeds: small NDJSON chunks as the emulator's Segment Export API writes them (web, mobile) and as
its legacy bundles do, hauser's raw.json rows verbatim, and hand-written rows at the edges of
what the scanner accepts. Regressions: one input per defect found in the C (issue #13) that a
chunk of a few rows can show; the ones that need gigabytes or hostile arguments are tests in
test_native_hostile.py.
"""

from __future__ import annotations

import argparse
import json
import random
import typing as t
from pathlib import Path

import orjson

HERE = Path(__file__).parent
START = "2024-01-01T00:00:01.000Z"


def _cut(lines: list[bytes], rng: random.Random, count: int) -> t.Iterator[bytes]:
    """`count` chunks of 1-8 consecutive lines, spread over `lines`."""
    for i in range(count):
        at = len(lines) * i // count
        yield b"".join(line + b"\n" for line in lines[at:at + rng.randint(1, 8)])


def emulator_seeds() -> t.Iterator[tuple[str, bytes]]:
    from tap_fullstory.testing.data import SyntheticSource
    from tap_fullstory.testing.values import orjson_default

    start = 1_704_067_200  # 2024-01-01T00:00:00Z
    for kind, mobile, legacy, count in (("web", False, False, 16), ("mobile", True, False, 8),
                                        ("bundle", False, True, 4)):
        source = SyntheticSource(seed=3, start_s=start, end_s=start + 2 * 3600,
                                 events_per_hour=60, mobile=mobile)
        # as the emulator writes them: export rows with sorted keys, bundle rows as they are
        option = 0 if legacy else orjson.OPT_SORT_KEYS
        lines = [orjson.dumps(row, default=orjson_default, option=option)
                 for batch in source.batches(None, None, legacy=legacy) for row in batch]
        for i, chunk in enumerate(_cut(lines, random.Random(kind), count)):
            yield f"emulator-{kind}-{i:02d}", chunk


def hauser_seeds(directory: Path) -> t.Iterator[tuple[str, bytes]]:
    """raw.json's rows byte for byte (one object per line, in a JSON array)."""
    lines = [line.strip().lstrip(b"[").rstrip(b"]").rstrip(b",")
             for line in (directory / "raw.json").read_bytes().splitlines()]
    lines = [line for line in lines if line]
    for i in range(0, len(lines), 4):
        yield f"hauser-{i // 4:02d}", b"".join(line + b"\n" for line in lines[i:i + 4])


def _row(**fields: t.Any) -> bytes:
    return json.dumps({"EventStart": START, "UserId": 7, **fields}, ensure_ascii=False,
                      separators=(",", ":")).encode()


EDGES: dict[str, bytes] = {
    "blank-lines-crlf": b"\n" + _row() + b"\r\n\n  \n" + _row(EventType="click") + b"\r\n",
    "blanks-between-tokens": b'{ "EventStart" : "' + START.encode() + b'" , "UserId" : 7 }\n',
    "escapes": _row(PageUrl="a\\b\"c\u00e9\u2028\U0001F600\x01\x1f\x7f/") + b"\n"
    + _row(PageUrl="x").replace(b'"x"', b'"\\u00e9\\ud83d\\ude00\\/\\b\\f\\n\\r\\t"') + b"\n",
    "nulls-and-lists": _row(PageUrl=None, evt_x_strs=["a", "b"], evt_e=[], evt_n=[[1, [2]], None],
                            evt_b_bool=True, evt_f=False) + b"\n",
    "numbers": _row(EventCumulativeLayoutShift=0.1, PageDuration=5, evt_r_real=1e21,
                    evt_i_int=-(2**63), evt_u=2**64 - 1, evt_s=1e-7, evt_z=-0.0) + b"\n"
    + _row(EventCumulativeLayoutShift=3).replace(b":3", b":3E+2") + b"\n",
    "repeats-and-ordinals": (_row(EventType="click") + b"\n") * 5 + _row(UserId=8) + b"\n",
    "eventstart-null-and-absent": _row(EventStart=None) + b"\n" + b'{"UserId":7}\n' * 2,
    "timestamps": _row(PageStart="2024-01-01T00:00:00.000Z", SessionStart="2024-02-29T23:59:59.999Z",
                       UserCreated="0001-01-01T00:00:00.000Z") + b"\n",
    "custom-vars-keys": _row(**{"b": 1, "a": 2, "CustomVars": {"x": 1}, "customvars": 3,
                                "caf\u00e9": 4, "": 5}).replace(b'{"x":1}', b"[1]") + b"\n",
    "known-field-other-case": _row(eventtype="x") + b"\n",
    "kelvin-sign": _row(**{"user_\u212a_str": 1}) + b"\n",
    "duplicate-key": _row()[:-1] + b',"UserId":8}\n',
    "nested-object": _row()[:-1] + b',"page_obj":{"a":1}}\n',
    "out-of-order": _row(EventStart="2024-01-01T00:00:02.000Z") + b"\n" + _row() + b"\n",
    "not-an-object": b"[1,2]\n" + _row() + b"\n",
    "empty-object": b"{}\n",
    "misfits": _row(PageId="12", IndvId=12.0, SessionId=2**63, PageDuration="", PageNumErrors=1.5,
                    UserCreated="yesterday", SessionStart="", PageStart=7, PageUrl=["a", 1],
                    PageIp=True, EventCumulativeLayoutShift=2**53 + 1, LoadEventTime=[])
    + b"\n" + _row(EventType=5, PageStart="\u00e9t\u00e9", UserCreated="",
                    PageDuration=True) + b"\n",
    "float-texts": _row(evt_a=1.0, evt_b=1e16, evt_c=123456789.123456789).replace(b"1e16", b"1E16")
    + b"\n",
}

#: One input per defect a chunk of a few rows can show (issue #13); the file name says which.
REGRESSIONS: dict[str, bytes] = {
    # strtod read past the chunk's end (scan.h): crashed before an unreadable page
    "strtod-past-the-end": _row(EventCumulativeLayoutShift=0.25)[:-2],
    # -0 in a float column: C wrote -0.0, the reference 0.0 (orjson reads the integer 0)
    "float-column-negative-zero": _row(EventCumulativeLayoutShift=0).replace(b":0}", b":-0}")
    + b"\n",
    # numbers beyond a double where C only validates (deselected, or not a column)
    "validated-1e400": _row(PageDuration=1).replace(b":1}", b":1e400}") + b"\n",
    "validated-minus-1e999": _row(EventCumulativeLayoutShift=1).replace(b":1}", b":-1e999}")
    + b"\n",
    "validated-600-digit-mantissa": _row(PageDuration=1).replace(b":1}", b":" + b"7" * 600
                                                                + b".5}") + b"\n",
    "custom-var-beyond-a-double": _row(evt_x=1).replace(b":1}", b":1.8e308}") + b"\n",
    # many custom vars out of order (the insertion sort: quadratic in them)
    "custom-vars-reversed": _row(**{f"k{i:04d}": i for i in reversed(range(2000))}) + b"\n",
    # a run of identical rows past the old 4,096-row limit of the ordinal count
    "long-run-of-identical-rows": (_row(EventType="click") + b"\n") * 4200,
}


def main() -> None:
    from tap_fullstory.testing.fixtures import hauser_fixtures_dir

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hauser", type=Path, default=hauser_fixtures_dir())
    args = parser.parse_args()
    seeds = [*emulator_seeds(), *EDGES.items()]
    if args.hauser is not None:
        seeds += hauser_seeds(args.hauser)
    for directory, items in ((HERE / "corpus", seeds), (HERE / "regressions", REGRESSIONS.items())):
        directory.mkdir(exist_ok=True)
        for old in directory.glob("*.ndjson"):
            old.unlink()
        for name, data in items:
            (directory / f"{name}.ndjson").write_bytes(data)
        print(f"{directory.relative_to(HERE.parent.parent)}: {len(items)} files")


if __name__ == "__main__":
    main()
