"""One version: pyproject.toml's, as the installed package, `tap-fullstory --version`, `--about`
and the changelog's newest release all say it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import tap_fullstory

ROOT = Path(__file__).resolve().parents[1]


def declared_version() -> str:
    """`version` in pyproject.toml's [project] table (the one source)."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    project = text.split("[project]", 1)[1].split("\n[", 1)[0]
    match = re.search(r'^version = "([^"]+)"$', project, re.M)
    assert match, "pyproject.toml: no static version in [project]"
    return match.group(1)


def test_the_package_is_the_declared_version() -> None:
    # fails on an install older than pyproject.toml: `make venv` reinstalls
    assert tap_fullstory.__version__ == declared_version()


def test_the_cli_prints_the_declared_version() -> None:
    version = declared_version()
    out = subprocess.run([sys.executable, "-m", "tap_fullstory.tap", "--version"],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    assert out.startswith(f"tap-fullstory v{version}, Meltano SDK v")
    about = subprocess.run([sys.executable, "-m", "tap_fullstory.tap", "--about"],
                           capture_output=True, text=True, check=True, timeout=120).stdout
    assert f"\nVersion: {version}\n" in about


def test_the_changelog_names_the_declared_version_first() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    releases = re.findall(r"^## \[([^\]]+)\]", changelog, re.M)
    assert releases and releases[0] == declared_version()
    assert len(releases) == len(set(releases))  # each release once
