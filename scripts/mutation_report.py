"""Mutation score per module from mutmut's results (`make mutate`), and the mutants that lived.

Reads `mutmut results --all true` (run in the checkout after `mutmut run`), prints one line per
module (killed / all, %) and every surviving or untested mutant, and exits 1 when the share killed
over all the modules is under the goal (90 %). A mutant that timed out counts as killed (the
change made the tests hang: they noticed it).
"""

from __future__ import annotations

import collections
import subprocess
import sys
from pathlib import Path

GOAL = 0.90
KILLED = {"killed", "timeout", "caught by type check"}


def main() -> int:
    mutmut = Path(sys.executable).with_name("mutmut")
    out = subprocess.run([str(mutmut), "results", "--all", "true"], capture_output=True, text=True,
                         check=True).stdout
    by_module: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    lived: list[str] = []
    for line in out.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if not sep or "__mutmut_" not in name:
            continue
        module = name.split(".x", 1)[0].split(".x_", 1)[0]
        module = ".".join(p for p in module.split(".") if not p.startswith(("x_", "xǁ")))
        by_module[module][status] += 1
        if status not in KILLED:
            lived.append(f"{name}: {status}")
    if not by_module:
        print("no mutmut results: run `mutmut run` first", file=sys.stderr)
        return 1
    total = killed = 0
    for module, counts in sorted(by_module.items()):
        n, k = sum(counts.values()), sum(counts[s] for s in KILLED)
        total, killed = total + n, killed + k
        print(f"{module:36} {k:5} of {n:5} killed  {100 * k / n:5.1f} %")
    print(f"{'all':36} {killed:5} of {total:5} killed  {100 * killed / total:5.1f} %")
    for item in lived:
        print(f"  lived: {item}")
    if killed < GOAL * total:
        print(f"mutation score {100 * killed / total:.1f} % is under the goal of {GOAL:.0%}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
