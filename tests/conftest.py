"""Project-wide pytest setup: the emulator and services fixtures, and no silent skips in CI."""

from __future__ import annotations

import os
import typing as t

import pytest

pytest_plugins = ["tap_fullstory.testing.fixtures", "tests.services"]

#: In CI (CI=true) and in `make test` (TAP_FULLSTORY_REQUIRE_ALL=1) every prerequisite must be
#: there: the hauser fixtures, the C scanner. (A stand-in service that does not start fails its
#: tests anywhere: tests/services.py.)
REQUIRE_ALL = (os.environ.get("CI", "").lower() == "true"
               or os.environ.get("TAP_FULLSTORY_REQUIRE_ALL") == "1")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[t.Any]) -> t.Iterator[None]:
    """A skip for a missing prerequisite becomes a failure with its one-line reason when
    REQUIRE_ALL; elsewhere it stays a skip whose reason says what to install."""
    from tap_fullstory.testing.fixtures import MISSING  # after pytest_plugins loaded it

    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if not (REQUIRE_ALL and report.skipped) or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    reason = reason.removeprefix("Skipped: ")
    if reason.startswith(MISSING):
        report.outcome = "failed"
        report.longrepr = f"{reason} (a failure, not a skip: CI=true or TAP_FULLSTORY_REQUIRE_ALL=1)"
