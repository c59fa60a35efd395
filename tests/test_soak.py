"""Short crash-resume soak (issue #7): bench/soak.py with one trial of 3 kill -9s.

The full soak is `.venv/bin/python bench/soak.py --runs 20`; see its docstring.
"""

from __future__ import annotations

import pytest

from bench.soak import parse_args, soak

pytestmark = [pytest.mark.services, pytest.mark.slow]


def test_kill_9_three_times_then_resume_equals_a_clean_run(postgres) -> None:
    lines: list[str] = []
    # the tap's default max_pending_exports (pipelined), exports PENDING 0.1 s: kills land while
    # exports are prepared ahead and downloaded ahead
    args = parse_args(["--runs", "1", "--kills", "3", "--days", "3", "--events-per-hour", "40",
                       "--seed", "5", "--pg-url", postgres.url, "--prepare-seconds", "0.1"])
    equal, runs = soak(args, log=lines.append)
    report = "\n".join(lines)
    assert (equal, runs) == (1, 1), report
    assert "kills landed mid-run" in report and "(0/3 kills" not in report
    assert lines[-1] == "1/1 final tables equal to the clean run"
