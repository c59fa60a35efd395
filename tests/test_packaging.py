"""The distribution a user installs: sdist and wheel build, the wheel installs into a fresh venv
with the C scanner compiled in, and the `tap-fullstory` executable answers `--about`."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_installs_in_a_fresh_venv_and_runs_about(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(dist),
                    str(ROOT)], check=True, capture_output=True, timeout=600)
    wheels = list(dist.glob("tap_fullstory_exports-*.whl"))
    assert len(wheels) == 1 and list(dist.glob("tap_fullstory_exports-*.tar.gz")), \
        sorted(p.name for p in dist.iterdir())
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", str(wheels[0])], check=True,
                   capture_output=True, timeout=600)
    about = subprocess.run([str(env_dir / "bin" / "tap-fullstory"), "--about", "--format=json"],
                           check=True, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    info = json.loads(about.stdout)
    assert info["name"] == "tap-fullstory"
    assert "api_key" in info["settings"]["properties"]
    native = subprocess.run(
        [str(py), "-c", "from tap_fullstory import scanner; print(scanner.AVAILABLE)"],
        check=True, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert native.stdout.strip() == "True"  # the wheel carries the compiled scanner
