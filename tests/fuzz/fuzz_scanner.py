"""`make fuzz`: the differential harness (harness.py) under atheris, libFuzzer for Python.

Each input is the bytes of a chunk of NDJSON rows; the committed seeds and regressions are
mutated (mutate.py: JSON-aware, and libFuzzer's byte mutations), guided by the coverage of the C
scanner (built with clang's fuzzer-no-link instrumentation, see mk/sanitize.mk). An input stops the run when the scanner, in any mode or
buffer form, writes anything the per-record reference does not (a Python exception: Mismatch)
or when ASan/UBSan report (an abort); libFuzzer then saves it as crash-* for replay.

    python tests/fuzz/fuzz_scanner.py [libFuzzer options] CORPUS_DIR [SEED_DIR...]

Writes a summary (inputs, accepted/refused per mode) to $FUZZ_SUMMARY (JSON) when the run ends.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import atheris

import tests.fuzz.use_build  # noqa: F401  # the fuzzing build of the scanner, first
from tests.fuzz.harness import Harness
from tests.fuzz.mutate import mutate

HARNESS = Harness()


def one_input(data: bytes) -> None:
    HARNESS.check(data)


def _summary(_arg: object = None) -> None:
    path = os.environ.get("FUZZ_SUMMARY")
    if path:
        with open(path, "w") as out:
            json.dump(dict(HARNESS.stats), out, indent=1, sort_keys=True)


# libFuzzer ends the process with exit(): Python's atexit does not run then, the C library's does.
_AT_EXIT = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(_summary)


def main() -> None:
    ctypes.CDLL(None).__cxa_atexit(_AT_EXIT, None, None)
    atheris.Setup(sys.argv, one_input, custom_mutator=mutate)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
