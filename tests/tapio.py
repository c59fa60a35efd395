"""Run the tap as users do (its CLI, in a subprocess) and collect what it printed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

TAP = [sys.executable, "-m", "tap_fullstory.tap"]


@dataclass
class TapRun:
    returncode: int
    stdout: str
    stderr: str
    messages: list[dict] = field(default_factory=list)

    @property
    def records(self) -> list[dict]:
        return [m["record"] for m in self.messages if m["type"] == "RECORD"]

    @property
    def states(self) -> list[dict]:
        return [m["value"] for m in self.messages if m["type"] == "STATE"]

    @property
    def batches(self) -> list[dict]:
        return [m for m in self.messages if m["type"] == "BATCH"]

    @property
    def final_state(self) -> dict | None:
        return self.states[-1] if self.states else None

    def bookmark(self) -> str | None:
        state = self.final_state or {}
        return state.get("bookmarks", {}).get("events", {}).get("replication_key_value")


def run_tap(
    config: dict[str, t.Any],
    *,
    state: dict | None = None,
    catalog: dict | None = None,
    args: t.Sequence[str] = (),
    timeout: float = 300,
    env: dict[str, str] | None = None,
) -> TapRun:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp, "config.json")
        cfg.write_text(json.dumps(config))
        cmd = [*TAP, "--config", str(cfg), *args]
        if state is not None:
            Path(tmp, "state.json").write_text(json.dumps(state))
            cmd += ["--state", str(Path(tmp, "state.json"))]
        if catalog is not None:
            Path(tmp, "catalog.json").write_text(json.dumps(catalog))
            cmd += ["--catalog", str(Path(tmp, "catalog.json"))]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout,
            env={**os.environ, **(env or {})},
        )
    messages = []
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            messages.append(json.loads(line))
    return TapRun(proc.returncode, proc.stdout, proc.stderr, messages)
