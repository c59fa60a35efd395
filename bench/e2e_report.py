"""What `make bench-e2e` prints and keeps: one result per pairing from its rounds, the same-run ratios
the issues set, and the table.

A run of several rounds (`--repeat N`) keeps, for each pairing, the round of median time (every round's
time beside it); a pairing with one failed round is a FAILURE. A ratio is taken within each round (both
pairings ran in it, minutes apart) and the median of those is reported: a slow minute on a shared machine
then moves one round's ratio, not the figure.
"""

from __future__ import annotations

import statistics
import typing as t

#: (pairing, anchor, goal, where the goal comes from): rows/s of the pairing over rows/s of the anchor.
RATIOS = [
    ("postgres-jsonl", "postgres-jsonl-defaults", 1.6, "issue #20: the job against JSONL batches with "
                                                       "target-postgres's defaults"),
    ("postgres-jsonl", "postgres-jsonl-filing", 1.6, "issue #20: the job against JSONL batches as at the "
                                                     "issue's filing"),
]


def combine(rounds: list[dict[str, t.Any]]) -> dict[str, t.Any]:
    """One pairing's rounds (each a result with its "round") as one result."""
    kept = [{"round": r["round"], "seconds": r.get("seconds"), "rows_per_s": r.get("rows_per_s"),
             "status": r["status"]} for r in rounds]
    failed = next((r for r in rounds if r["status"] != "ok"), None)
    if failed is not None:
        return {**failed, "rounds": kept}
    by_time = sorted(rounds, key=lambda r: r["seconds"])
    return {**by_time[(len(by_time) - 1) // 2], "rounds": kept}


def ratios(results: dict[str, dict[str, t.Any]]) -> list[dict[str, t.Any]]:
    """The RATIOS whose two pairings both ran and loaded exactly: per round, and their median."""
    out = []
    for name, anchor, goal, why in RATIOS:
        a, b = results.get(name, {}), results.get(anchor, {})
        if a.get("status") != "ok" or b.get("status") != "ok":
            continue
        speed = {r["round"]: r["rows_per_s"] for r in b["rounds"]}
        per_round = [round(r["rows_per_s"] / speed[r["round"]], 3) for r in a["rounds"]
                     if speed.get(r["round"])]
        median = round(statistics.median(per_round), 2)
        out.append({"pairing": name, "anchor": anchor, "per_round": per_round, "median": median,
                    "goal": goal, "met": median >= goal, "why": why})
    return out


def progress(name: str, r: dict[str, t.Any]) -> None:
    if r["status"] == "ok":
        print(f"  {name}: {r['rows_loaded']:,} rows in {r['seconds']:.1f} s = {r['rows_per_s']:,} rows/s, "
              f"peak RSS {r['peak_rss_mb']:,.0f} MB", flush=True)
    else:
        print(f"  {name}: {r['status']}", flush=True)
        if r.get("log_tail"):
            print("    " + r["log_tail"].replace("\n", "\n    "), flush=True)


def table(results: dict[str, dict[str, t.Any]], same_run: list[dict[str, t.Any]]) -> str:
    head = (f"{'pairing':17s} {'target':17s} {'mode':16s} {'rows':>10s} {'s':>7s} {'rows/s':>8s} "
            f"{'RSS MB':>7s} {'CPU s':>6s} {'limit r/s':>10s} {'x hauser':>8s}")
    lines = [head, "-" * len(head)]
    for name, r in results.items():
        left = f"{name:17s} {r['target']:17s} {r['mode'][:16]:16s}"
        if r["status"] != "ok":
            lines.append(f"{left} {r['status']}")
            continue
        lim = (r.get("limit") or {}).get("rows_per_s")
        ratio = r.get("ratio_to_hauser")
        lines.append(f"{left} {r['rows_loaded']:>10,d} {r['seconds']:>7.1f} {r['rows_per_s']:>8,d} "
                     f"{r['peak_rss_mb']:>7,.0f} {r['cpu_seconds_total']:>6.0f} {f'{lim:,}' if lim else '-':>10s} "
                     f"{f'{ratio:.2f}' if ratio else '-':>8s}")
    if any(len(r.get("rounds", [])) > 1 for r in results.values()):
        lines += ["", "seconds per round (the table shows the round of median time):"]
        lines += [f"  {name:17s} " + ", ".join(f"{s['seconds']:.1f}" if s["seconds"] else s["status"]
                                              for s in r["rounds"])
                  for name, r in results.items() if r.get("rounds")]
    lines += ["", "CPU seconds per program (2 cores: what bounds each run):"]
    for name, r in results.items():
        if r.get("cpu_seconds"):
            lines.append(f"  {name:17s} " + ", ".join(f"{k} {v:.0f}" for k, v in r["cpu_seconds"].items()))
    if same_run:
        lines += ["", "same-run ratios (rows/s over rows/s, per round; median):"]
        lines += [f"  {x['pairing']} / {x['anchor']}: {', '.join(f'{v:.2f}' for v in x['per_round'])}; "
                  f"median {x['median']:.2f} (the goal on the 1M-event day: {x['goal']}, "
                  f"{'met' if x['met'] else 'NOT met'})"
                  for x in same_run]
    notes = {(r.get("limit") or {}).get("what") or "": (r.get("limit") or {}).get("note", "")
             for r in results.values()}
    lines += ["", "limit = the warehouse's own speed on the same rows:"]
    lines += [f"  {what or '(none)'}: {note}" for what, note in notes.items() if note]
    return "\n".join(lines)
