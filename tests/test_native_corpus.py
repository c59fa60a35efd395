"""Replays the fuzzer's seed corpus and the regression inputs (tests/fuzz/) through the
differential harness: in every mode and buffer form, each chunk the C scanner accepts equals the
per-record reference bit for bit, and the rest it refuses. `make sanitize` runs this file on the
ASan + UBSan build as well.
"""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from tap_fullstory.testing.fixtures import needs_c_scanner
from tests.fuzz.harness import Harness
from tests.fuzz.paths import MODES

pytestmark = needs_c_scanner

FUZZ = Path(__file__).parent / "fuzz"
SEEDS = sorted((FUZZ / "corpus").glob("*.ndjson"))
REGRESSIONS = sorted((FUZZ / "regressions").glob("*.ndjson"))


@pytest.fixture(scope="module")
def harness() -> Harness:
    return Harness()


@pytest.mark.parametrize("path", SEEDS + REGRESSIONS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_replay(harness: Harness, path: Path) -> None:
    harness.check(path.read_bytes())


def test_the_seeds_are_mostly_accepted(harness: Harness) -> None:
    """Real exports (emulator, hauser) take the fast path: a replay that refused them all
    would prove nothing about equality."""
    accepted: collections.Counter[str] = collections.Counter()
    real = [path for path in SEEDS if path.name.startswith(("emulator-", "hauser-"))]
    for path in real:
        for mode, outcome in zip(MODES, harness.check(path.read_bytes()), strict=True):
            accepted[mode.name] += outcome[0] == "rows"
    assert len(real) >= 60
    for mode in MODES:
        assert accepted[mode.name] >= len(real) * 0.9, (mode.name, accepted)


@pytest.mark.parametrize(("name", "modes"), [
    ("float-column-negative-zero", ["parquet-web"]),  # was written as -0.0
    ("long-run-of-identical-rows", [mode.name for mode in MODES]),  # was refused past 4,096
    ("custom-vars-reversed", [mode.name for mode in MODES]),
])
def test_the_scanner_takes_these_regression_inputs(harness: Harness, name: str,
                                                    modes: list[str]) -> None:
    """Equal to the reference (test_replay) is not enough here: the fix is that C takes them."""
    outcomes = harness.check((FUZZ / "regressions" / f"{name}.ndjson").read_bytes())
    taken = {mode.name for mode, outcome in zip(MODES, outcomes, strict=True)
             if outcome[0] == "rows"}
    assert set(modes) <= taken
