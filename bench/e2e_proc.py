"""One watched child process for `make bench-e2e`: wall time, the whole tree's peak RSS, and limits.

bench/run.py's ``measure`` exits the harness when a run fails; an end-to-end run that fails, runs out
of time or grows past the memory cap is a result to report here, so this runner returns instead.
The tree's RSS is sampled the same way as bench/run.py (its ``_tree``/``_rss``): every 20 ms the
largest of the tree's summed VmRSS and any single process's VmHWM (kernel high-water mark).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
import typing as t
from pathlib import Path

from bench.run import _rss, _tree

TICK = os.sysconf("SC_CLK_TCK")


class Watched(t.NamedTuple):
    seconds: float
    peak_rss: int  # bytes, whole process tree
    returncode: int | None  # None: stopped by the harness (see `stopped`)
    stopped: str  # "" if the process exited by itself; else why the harness stopped it
    cpu: dict[str, float]  # CPU seconds per program of the tree (meltano, the tap, the target...)
    server_peak_rss: int  # bytes, the `servers` processes and their children (summed VmRSS)


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """user + system CPU of one process (with its reaped children: a server's finished backends)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / TICK


def program(pid: int) -> str:
    """A process's program name: the first argv entry that is not an interpreter."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return "?"
    names = [Path(a).name for a in argv[:2]]
    return next((n for n in names if not n.startswith(("python", "-"))), names[0] if names else "?")


def run_watched(cmd: list[str], *, cwd: Path, env: dict[str, str], log: Path,
                timeout: float = 3600, max_rss: int = 0, servers: t.Sequence[int] = (),
                until: t.Callable[[], bool] | None = None) -> Watched:
    """Run cmd in its own process group, output to log; stop it on timeout, when its tree or the
    servers it talks to (pids: a database stand-in) pass max_rss (bytes, 0 = no cap), or, for a
    daemon like hauser, once until() is true (then stopped == "done")."""
    with open(log, "wb") as out:
        began = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        peak, server_peak, stopped, ended = 0, 0, "", 0.0
        names: dict[int, str] = {}
        used: dict[int, float] = {}  # last CPU seconds seen per pid
        lock = threading.Lock()
        done = threading.Event()

        def poll() -> None:
            nonlocal peak, server_peak
            while not done.is_set():
                served = sum(_rss(p)[0] for s in servers for p in _tree(s))
                pids = _tree(proc.pid)
                now = [_rss(p) for p in pids]
                for p in pids:  # the name again each time: a fresh fork shows its parent's argv
                    name = program(p)  # "?" once it has exited (a zombie has no argv)
                    names[p] = name if name != "?" else names.get(p, name)
                    used[p] = max(used.get(p, 0.0), cpu_seconds(p))
                if now:
                    with lock:
                        peak = max(peak, sum(r for r, _ in now), max(h for _, h in now))
                        server_peak = max(server_peak, served)
                done.wait(0.1)  # VmHWM keeps each peak between samples; a tighter loop took CPU from the run

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        try:
            while proc.poll() is None:
                elapsed = time.perf_counter() - began
                if until is not None and until():
                    ended, stopped = elapsed, "done"
                elif elapsed > timeout:
                    stopped = f"timeout after {timeout:.0f} s"
                elif max_rss and peak > max_rss:
                    stopped = f"memory cap: process tree above {max_rss / 2**30:.1f} GB"
                elif max_rss and server_peak > max_rss:
                    stopped = f"memory cap: the warehouse server above {max_rss / 2**30:.1f} GB"
                if stopped:
                    _kill_group(proc)
                    break
                time.sleep(0.05)
        finally:
            if proc.poll() is None:  # KeyboardInterrupt and the like: never leave the tree behind
                _kill_group(proc)
        seconds = ended or time.perf_counter() - began
        done.set()
        poller.join()
    cpu: dict[str, float] = {}
    for p, secs in used.items():
        if secs >= 0.05:
            cpu[names[p]] = round(cpu.get(names[p], 0.0) + secs, 1)
    return Watched(seconds, peak, None if stopped else proc.returncode, stopped, cpu, server_peak)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def tail(path: Path, lines: int = 12) -> str:
    """The last lines of a log, for a failure report."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
