"""The differential check behind `make fuzz`, the corpus replay and the scanner tests.

For one input (the bytes of a chunk of NDJSON rows), in every mode of `paths.MODES`:
- the scanner gives the same outcome whatever form the chunk comes in: exact-size bytes, a
  memoryview slice of a larger buffer (followed by digits and quotes, to tempt a read past the
  end), and a memoryview ending right before an unreadable page (`guarded`);
- a mutable buffer (bytearray) is refused with TypeError before any scan;
- a chunk the scanner accepts equals the per-record reference exactly (floats bit for bit);
  when the reference raises, the scanner must have refused.
Refusing is always allowed (the reference then writes the chunk). Anything else raises Mismatch.
"""

from __future__ import annotations

import collections
import typing as t

from tests.fuzz.guarded import GuardedChunks, supported
from tests.fuzz.paths import MODES, Outcome, Paths

#: Bytes around the memoryview form: digits, an exponent, a quote, a backslash.
_BEFORE, _AFTER = b'{"9\\', b'5555.5e5"\\'


class Mismatch(AssertionError):
    """The scanner wrote something the reference does not, or read differently per form."""


class Harness:
    def __init__(self, guarded_capacity: int = 1 << 20) -> None:
        self.paths = [Paths(mode) for mode in MODES]
        self.guarded = GuardedChunks(guarded_capacity) if supported() else None
        self.stats: collections.Counter[str] = collections.Counter()

    def forms(self, data: bytes) -> t.Iterator[tuple[str, t.Any]]:
        yield "bytes", data
        yield "view", memoryview(_BEFORE + data + _AFTER)[len(_BEFORE):len(_BEFORE) + len(data)]
        if self.guarded is not None and len(data) <= self.guarded.capacity:
            yield "guarded", self.guarded.view(data)

    def check(self, data: bytes) -> list[Outcome]:
        """The scanner's outcome per mode; raises Mismatch."""
        self.stats["inputs"] += 1
        outcomes = []
        for paths in self.paths:
            name = paths.mode.name
            try:
                paths.scanner(bytearray(data))
            except TypeError:
                pass
            else:
                raise Mismatch(f"{name}: a bytearray chunk was scanned")
            first: Outcome | None = None
            for form, chunk in self.forms(data):
                got = paths.scanner(chunk)
                if first is None:
                    first = got
                elif got != first:
                    raise Mismatch(f"{name}: {form} gives {_short(got)}, bytes {_short(first)}")
            assert first is not None
            outcomes.append(first)
            if first[0] == "refused":
                self.stats[f"{name}: refused"] += 1
                continue
            self.stats[f"{name}: accepted"] += 1
            try:
                expected = paths.reference(data)
            except Exception as exc:  # the reference stops here: C had to refuse
                raise Mismatch(f"{name}: C accepted, the reference raises {exc!r}") from exc
            if expected != first:
                raise Mismatch(f"{name}: C wrote {_short(first)}, the reference {_short(expected)}")
        return outcomes


def _short(outcome: Outcome) -> str:
    text = repr(outcome)
    return text if len(text) < 600 else text[:600] + "..."
