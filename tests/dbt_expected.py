"""What the dbt models (transform/) should hold, computed in plain Python from the emulator's export rows.

Written from the definitions in docs/models.md, not from the SQL: loops over the rows FullStory would export,
so a mistake in a model's SQL (a join that fans out, a summed rage counter, a session cut at midnight) shows up as
a difference. Keys: a session is (UserId, SessionId), a page view (UserId, SessionId, PageId).
"""

from __future__ import annotations

import datetime as dt
import typing as t
from collections import defaultdict
from dataclasses import dataclass, field

Row = dict[str, t.Any]


def _ts(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _ms(delta: dt.timedelta) -> int:
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


def rage_bursts(clicks: list[Row]) -> list[int]:
    """Sizes of the rage-click bursts among one page's clicks: EventModFrustrated counts 1, 2, 3... within a burst
    (0 outside one); a frustrated click that does not continue the previous click's count starts a new burst."""
    ordered = sorted(clicks, key=lambda r: (r["EventStart"], r.get("EventPageOffset") or 0))
    sizes: list[int] = []
    previous = 0
    for click in ordered:
        count = click.get("EventModFrustrated") or 0
        if count > 0:
            if previous > 0 and count > previous:
                sizes[-1] = max(sizes[-1], count)
            else:
                sizes.append(count)
        previous = count
    return sizes


@dataclass
class Page:
    rows: list[Row] = field(default_factory=list)

    @property
    def start(self) -> dt.datetime:
        starts = [_ts(r["PageStart"]) for r in self.rows if r.get("PageStart")]
        return min(starts) if starts else min(_ts(r["EventStart"]) for r in self.rows)

    @property
    def end(self) -> dt.datetime:
        ends = []
        for r in self.rows:
            at = _ts(r["EventStart"])
            if r.get("PageStart") and r.get("PageDuration") is not None:
                at = _ts(r["PageStart"]) + dt.timedelta(milliseconds=r["PageDuration"])
            ends.append(at)
        return max(ends)

    @property
    def active_ms(self) -> int:
        return max((r.get("PageActiveDuration") or 0) for r in self.rows)

    @property
    def rage_clicks(self) -> int:
        return len(rage_bursts([r for r in self.rows if r["EventType"] == "click"]))


@dataclass
class Session:
    pages: dict[int, Page] = field(default_factory=lambda: defaultdict(Page))

    @property
    def rows(self) -> list[Row]:
        return [r for p in self.pages.values() for r in p.rows]

    @property
    def started_at(self) -> dt.datetime:
        return min(_ts(r["EventStart"]) for r in self.rows)

    @property
    def duration_ms(self) -> int:
        return _ms(max(p.end for p in self.pages.values()) - self.started_at)


def sessions(rows: t.Iterable[Row]) -> dict[str, Session]:
    """Sessions keyed like the models: "UserId:SessionId"."""
    out: dict[str, Session] = defaultdict(Session)
    for r in rows:
        out[f"{r['UserId']}:{r['SessionId']}"].pages[r["PageId"]].rows.append(r)
    return out


def summary(rows: list[Row]) -> dict[str, t.Any]:
    """The figures the tests compare with the models."""
    by_session = sessions(rows)
    per_day: dict[str, int] = defaultdict(int)
    users_per_day: dict[str, set[int]] = defaultdict(set)
    for s in by_session.values():
        day = s.started_at.date().isoformat()
        per_day[day] += 1
        users_per_day[day].add(s.rows[-1]["IndvId"])
    clicks = [r for r in rows if r["EventType"] == "click"]
    return {
        "events": len(rows),
        "sessions_per_day": dict(sorted(per_day.items())),
        "users_per_day": {d: len(u) for d, u in sorted(users_per_day.items())},
        "duration_ms": {k: s.duration_ms for k, s in by_session.items()},
        "active_ms": {k: sum(p.active_ms for p in s.pages.values()) for k, s in by_session.items()},
        "pages": {k: len(s.pages) for k, s in by_session.items()},
        "rage_clicks": {k: sum(p.rage_clicks for p in s.pages.values()) for k, s in by_session.items()},
        "rage_clicks_total": sum(p.rage_clicks for s in by_session.values() for p in s.pages.values()),
        "frustrated_sum": sum(r.get("EventModFrustrated") or 0 for r in clicks),
        "dead_clicks": sum(1 for r in clicks if (r.get("EventModDead") or 0) > 0),
        "error_clicks": sum(1 for r in clicks if (r.get("EventModError") or 0) > 0),
        "suspicious": sum(1 for r in rows if (r.get("EventModSuspicious") or 0) > 0),
        "failed_requests": sum(1 for r in rows if r["EventType"] == "request" and (r.get("ReqStatus") or 0) >= 400),
        "custom_events": sum(1 for r in rows if r["EventType"] in ("custom", "custom_error")),
        "users": len({r["IndvId"] for r in rows}),
        "sessions_per_user": _sessions_per_user(by_session),
    }


def _sessions_per_user(by_session: dict[str, Session]) -> dict[int, int]:
    out: dict[int, int] = defaultdict(int)
    for s in by_session.values():
        last = max(s.rows, key=lambda r: r["EventStart"])
        out[last["IndvId"]] += 1
    return dict(out)
