"""The C scanner on hostile input and arguments, called directly (`_columns.split`) as well as
through its wrappers: one test per defect a review or the fuzzer found (issue #13), with the
input that showed it. The C must be safe for any bytes and any arguments, not only for what the
tap's chunker happens to pass. Each test fails on the scanner as it was before the fix (some by
hanging: those run in a subprocess with a generous time limit, so that they fail instead).
"""

from __future__ import annotations

import array
import ctypes
import mmap
import os
import struct
import subprocess
import sys
import textwrap
import typing as t

import orjson
import pytest

from tap_fullstory import scanner
from tap_fullstory.testing.fixtures import needs_c_scanner
from tests.fuzz.guarded import GuardedChunks, supported
from tests.fuzz.harness import Harness
from tests.fuzz.paths import MODES, Paths

pytestmark = needs_c_scanner

START = "2024-01-01T00:00:01.000Z"
KNOWN = ((b"EventStart", "t", True), (b"UserId", "i", True),
         (b"EventCumulativeLayoutShift", "f", True), (b"PageDuration", "i", False),
         (b"PageUrl", "s", True))
IDENTITY = (0, 1)


def split(chunk: t.Any, known: t.Any = KNOWN, identity: t.Any = IDENTITY, *rest: t.Any) -> t.Any:
    return scanner._columns.split(chunk, known, identity, *rest)


def row(**fields: t.Any) -> bytes:
    return orjson.dumps({"EventStart": START, **fields}) + b"\n"


def finishes(code: str, limit: float = 60.0) -> str:
    """Runs `code` in a fresh interpreter on this build of the scanner; the test fails if it
    does not finish within `limit` seconds (the old code hung or took minutes there, holding
    the GIL: only a subprocess can be stopped). Returns its stdout."""
    program = "import tests.fuzz.use_build\n" + textwrap.dedent(code)
    try:
        done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                              timeout=limit, cwd=os.path.dirname(os.path.dirname(__file__)))
    except subprocess.TimeoutExpired:
        pytest.fail(f"did not finish within {limit} s")
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def c_bytes(parts: list[bytes | tuple[int, int]]) -> bytes:
    """A bytes object built in place (no copies): parts are bytes, or (byte, count) runs. For
    inputs of gigabytes, where concatenation would need twice the memory."""
    size = sum(len(p) if isinstance(p, bytes) else p[1] for p in parts)
    make = ctypes.pythonapi.PyBytes_FromStringAndSize
    make.restype, make.argtypes = ctypes.py_object, [ctypes.c_void_p, ctypes.c_ssize_t]
    out = make(None, size)
    at = id(out) + bytes.__basicsize__ - 1
    for part in parts:
        if isinstance(part, bytes):
            ctypes.memmove(at, part, len(part))
            at += len(part)
        else:
            ctypes.memset(at, part[0], part[1])
            at += part[1]
    return t.cast(bytes, out)


def _available_memory() -> int:
    with open("/proc/meminfo") as info:
        for line in info:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


# --- reads bounded by the chunk's end ---------------------------------------------------------


@pytest.mark.skipif(not supported(), reason="bytes layout of this Python not known")
@pytest.mark.parametrize("tail", [b"0.2", b"-0.25e1", b"1", b"12345678901234567890123", b"0",
                                  b"-", b"1e", b'"2024-01', b'"\\u12', b"tru", b"[1,"])
def test_a_chunk_ending_inside_a_value_is_read_within_its_bytes(tail: bytes) -> None:
    """strtod read on past the chunk's end (scan.h): a chunk ending in `...:0.2` right before an
    unreadable page crashed (SIGSEGV). Every value kind, cut at the end."""
    guarded = GuardedChunks(4096)
    for field in (b"EventCumulativeLayoutShift", b"PageDuration", b"PageUrl", b"custom_x"):
        chunk = b'{"EventStart":"' + START.encode() + b'","' + field + b'":' + tail
        assert split(guarded.view(chunk))[0] is None  # an unfinished row: refused


def test_a_memoryview_slice_is_read_to_its_end_only() -> None:
    """What follows the slice in the underlying bytes (more digits) is not part of the number."""
    whole = row(EventCumulativeLayoutShift=0.5)[:-2] + b"25}\n"
    cut = memoryview(whole)[: whole.index(b"25}")]
    assert split(cut)[1] == "invalid object"  # the row ends at "0.5": not closed


# --- numbers as the reference reads them ------------------------------------------------------


def _float_bits(chunk: bytes) -> bytes:
    scanned = split(chunk)
    assert scanned[0] == 1, scanned
    address, size, _owner = scanned[1][2][1]  # EventCumulativeLayoutShift's values
    return ctypes.string_at(address, size)


@pytest.mark.parametrize(("text", "value"), [(b"-0", 0.0), (b"-0.0", -0.0), (b"0", 0.0),
                                             (b"-0e3", -0.0), (b"-1e-400", -0.0), (b"7", 7.0)])
def test_negative_zero_in_a_float_column_is_the_references_value(text: bytes, value: float) -> None:
    """orjson reads `-0` as the integer 0 (written 0.0); C wrote -0.0. Compared bit for bit:
    -0.0 == 0.0 in Python, so the earlier tests could not see it."""
    chunk = row()[:-2] + b',"EventCumulativeLayoutShift":' + text + b"}\n"
    assert _float_bits(chunk) == struct.pack("<d", value)
    assert orjson.loads(text) == value and struct.pack("<d", float(orjson.loads(text))) == \
        struct.pack("<d", value)  # the reference's own reading
    parquet = Paths(MODES[0])
    assert parquet.scanner(chunk) == parquet.reference(chunk)


OUT_OF_RANGE = [b"1e400", b"-1e999", b"1" * 600 + b".5", b"1.7976931348623159e308",
                b"-" + b"9" * 400 + b".0", b"0." + b"0" * 500 + b"1"]


@pytest.mark.parametrize("text", OUT_OF_RANGE)
def test_a_number_beyond_a_double_is_refused_where_c_only_validates(text: bytes) -> None:
    """A field C does not write (deselected, or not in the schema) was only validated, and an
    out-of-range number passed; the reference raises there (orjson: number is infinity). Refused
    in every mode now (a number text over 400 characters too: the reference decides)."""
    chunk = row()[:-2] + b',"PageDuration":' + text + b"}\n"
    assert split(chunk) == (None, "float out of range")
    harness = Harness(guarded_capacity=4096)
    assert [outcome[0] for outcome in harness.check(chunk)] == ["refused"] * len(MODES)


def test_the_largest_double_is_still_accepted() -> None:
    chunk = row()[:-2] + b',"PageDuration":1.7976931348623157e308}\n'
    assert split(chunk)[0] == 1
    assert orjson.loads(b"1.7976931348623157e308") == 1.7976931348623157e308


@pytest.mark.slow
@pytest.mark.skipif(_available_memory() < 4 << 30, reason="needs 4 GB of free memory")
def test_an_integer_of_2_31_digits_is_refused() -> None:
    """The digit count was an int: 2^31 digits wrapped negative, passed as 'fits in 64 bits', and
    the row was accepted with a wrapped value (json.h)."""
    head = b'{"EventStart":"' + START.encode() + b'","UserId":'
    chunk = c_bytes([head, (ord("1"), 1 << 31), b"}\n"])
    assert split(chunk) == (None, "integer beyond 64 bits")


# --- every narrowing checked ------------------------------------------------------------------


def test_eventid_offsets_cannot_wrap() -> None:
    """EventId's int32 Arrow offsets (32 characters a row) wrapped past 2^26 rows (columns.c)."""
    most = (2**31 - 1) // 32
    chunk = b"{}\n" * most  # most + 1 lines, counting the empty one after the last newline
    assert split(chunk, ((b"EventStart", "t", True),), (0,)) == \
        (None, "too many lines for EventId offsets")


# --- the names table --------------------------------------------------------------------------


def test_more_names_than_the_table_holds_are_refused() -> None:
    """Probing never ended once 512 names were in the table (names.h): 513 names hung `insert`
    holding the GIL, 512 hung the lookup of any unknown key. Now at most 256 names; a lookup
    in a full table ends."""
    out = finishes("""
        from tap_fullstory.scanner import _columns
        row = b'{"EventStart":"2024-01-01T00:00:01.000Z","unknown_key":1}\\n'
        for n in (257, 512, 513):
            try:
                _columns.split(row, tuple((b"n%d" % i, "s", False) for i in range(n)), None)
            except ValueError as exc:
                print(exc)
        print(_columns.split(row, tuple((b"n%d" % i, "s", False) for i in range(256)), None)[0])
    """)
    assert out.split("\n")[:4] == ["known: at most 256 fields"] * 3 + ["1"]


@pytest.mark.parametrize("name", [(ctypes.c_char * 10).from_buffer_copy(b"EventStart"),
                                  memoryview(b"EventStart"), bytearray(b"EventStart"),
                                  "EventStart", 7])
def test_a_field_name_must_be_bytes(name: t.Any) -> None:
    """A ctypes array passed `y#` and reached PyBytes_AS_STRING (columns.c): an assertion
    failure, or a read of whatever the object holds."""
    with pytest.raises(TypeError):
        split(row(), ((name, "t", True), (b"UserId", "i", True)), (0, 1))


@pytest.mark.parametrize(("known", "error"), [
    (((b"EventStart", "t", True), (b"EventStart", "s", False)), ValueError),  # a duplicate
    (((b"EventStart", "x", False),), ValueError),  # a kind, even of a field not written
    (((b"EventStart", "tt", True),), ValueError),
    ([b"EventStart", "t", True], TypeError),  # an item that is not a tuple
])
def test_bad_field_lists_raise(known: t.Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        split(row(), (known,) if isinstance(known, list) else known, None)


def test_record_mode_texts_must_be_bytes() -> None:
    record = (memoryview(b"head"), b"tail", True, True, None, None)
    with pytest.raises(TypeError):
        split(row(), KNOWN, IDENTITY, None, record)
    with pytest.raises(TypeError):
        split(row(), KNOWN, IDENTITY, None, [b"head", b"tail", True, True, None, None])


# --- immutable chunks only --------------------------------------------------------------------


def test_only_immutable_chunks_are_scanned() -> None:
    """The scan runs without the GIL: a bytearray changed by another thread meanwhile gave
    invalid UTF-8 in CustomVars. Only bytes, or a memoryview of bytes, are taken now."""
    data = row(custom="caf\u00e9")
    with mmap.mmap(-1, len(data)) as writable:
        writable.write(data)
        for chunk in (bytearray(data), memoryview(bytearray(data)),
                      memoryview(bytearray(data)).toreadonly(), writable, memoryview(writable),
                      array.array("b", data), data.decode()):
            with pytest.raises(TypeError, match="bytes"):
                split(chunk)
    for chunk in (data, memoryview(data), memoryview(b"xx" + data)[2:], memoryview(data)[:]):
        assert split(chunk)[0] == 1


# --- work linear in the input -----------------------------------------------------------------


def test_a_long_run_of_identical_rows_is_counted_linearly() -> None:
    """Ordinals were counted by comparing each row with every earlier row of its EventStart, and
    runs over 4,096 rows were refused; now a hash of the identity digests, any length."""
    chunk = row(UserId=7, EventType="click") * 20_000 + row(UserId=8) * 3
    parquet = Paths(MODES[0])
    outcome = parquet.scanner(chunk)
    assert outcome[0] == "rows"
    assert outcome == parquet.reference(chunk)


def test_custom_vars_in_any_order_and_number() -> None:
    keys = [f"k{i:05d}" for i in range(5_000)] + ["a", "ab", "a\u00e9", "k", "K1", ""]
    chunk = orjson.dumps({"EventStart": START, **{k: i for i, k in enumerate(reversed(keys))}})
    assert [outcome[0] for outcome in Harness(4096 << 4).check(chunk + b"\n")] == \
        ["rows"] * len(MODES)


def test_a_row_with_300k_custom_vars_is_sorted_in_n_log_n() -> None:
    """Insertion sort of a row's custom vars (scan.h): 60k keys took 3.1 s, 300k would take
    minutes. A hang guard with a wide margin, not a timing test: it takes a fraction of a second."""
    out = finishes("""
        import orjson
        from tap_fullstory.scanner import _columns
        row = orjson.dumps({"EventStart": "2024-01-01T00:00:01.000Z",
                            **{f"k{i:06d}": i for i in reversed(range(300_000))}}) + b"\\n"
        print(_columns.split(row, ((b"EventStart", "t", True),), (0,))[0])
    """)
    assert out.strip() == "1"


def test_an_old_build_is_not_used() -> None:
    """A build of csrc/ from before these fixes (an editable install not rebuilt) has no API
    version: `scanner` then leaves it out rather than run it."""
    out = finishes("""
        import sys, types
        import tap_fullstory
        old = types.ModuleType("tap_fullstory._columns")  # no API attribute
        # `from tap_fullstory import _columns` reads the package attribute first (use_build sets it)
        sys.modules["tap_fullstory._columns"] = tap_fullstory._columns = old
        from tap_fullstory import scanner
        print(scanner.AVAILABLE, scanner._columns)
    """)
    assert out.strip() == "False None"
    assert scanner._columns.API == 3
