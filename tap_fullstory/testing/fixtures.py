"""pytest fixtures: a shared synthetic emulator, a hauser-fixture emulator, and a per-test factory (for faults).

Register with ``pytest_plugins = ["tap_fullstory.testing.fixtures"]`` in a conftest.py.
"""

from __future__ import annotations

import os
import typing as t
from pathlib import Path

import pytest

from tap_fullstory import scanner

from .emulator import Emulator

API_KEY = "test-key"
#: A skip whose reason starts so is for a missing prerequisite: under CI=true, or with
#: TAP_FULLSTORY_REQUIRE_ALL=1 (`make test` sets it), the project's conftest makes it a failure.
MISSING = "missing prerequisite: "
#: For tests of the C scanner (`tap_fullstory._columns`).
needs_c_scanner = pytest.mark.skipif(
    not scanner.AVAILABLE, reason=MISSING + "the C scanner is not built: install a C compiler "
    "(apt-get install gcc python3-dev) and rebuild the package (make venv, or pip install -e .)")


def hauser_fixtures_dir() -> Path | None:
    """The vendored hauser test data: $FULLSTORY_FIXTURES (the fixtures dir or its hauser/ child), else
    <root>/shared/fixtures/hauser found by walking up from this package (the repo lives at <root>/main)."""
    env = os.environ.get("FULLSTORY_FIXTURES")
    candidates = [Path(env), Path(env) / "hauser"] if env else []
    here = Path(__file__).resolve()
    candidates += [p / "shared" / "fixtures" / "hauser" for p in here.parents]
    return next((c for c in candidates if (c / "raw.json").is_file()), None)


@pytest.fixture(scope="session")
def emulator() -> t.Iterator[Emulator]:
    """Synthetic organisation, 3 days from 2024-01-01, api key "test-key"; shared: don't script faults on it."""
    with Emulator(API_KEY, seed=1, start="2024-01-01T00:00:00Z", days=3) as emu:
        yield emu


@pytest.fixture(scope="session")
def hauser_dir() -> Path:
    found = hauser_fixtures_dir()
    if found is None:
        pytest.skip(MISSING + "hauser's test fixtures (raw.json, json/, groupByDay/) not found: put "
                    "them in <root>/shared/fixtures/hauser or set FULLSTORY_FIXTURES to their directory")
    return found


@pytest.fixture(scope="session")
def hauser_emulator(hauser_dir: Path) -> t.Iterator[Emulator]:
    """Serves hauser's raw.json (144 rows, 2020-08-27..30) through both APIs."""
    with Emulator(API_KEY, rows_file=hauser_dir / "raw.json") as emu:
        yield emu


def _factory() -> tuple[t.Callable[..., Emulator], list[Emulator]]:
    started: list[Emulator] = []

    def make(**kwargs: t.Any) -> Emulator:
        kwargs.setdefault("api_key", API_KEY)
        emu = Emulator(**kwargs).start()
        started.append(emu)
        return emu

    return make, started


@pytest.fixture
def make_emulator() -> t.Iterator[t.Callable[..., Emulator]]:
    """Factory: make_emulator(**Emulator kwargs) starts a fresh emulator for this test and stops it afterwards."""
    make, started = _factory()
    yield make
    for emu in started:
        emu.stop()


@pytest.fixture(scope="module")
def make_emulator_module() -> t.Iterator[t.Callable[..., Emulator]]:
    """Like make_emulator, but the emulators live until the end of the test module."""
    make, started = _factory()
    yield make
    for emu in started:
        emu.stop()
