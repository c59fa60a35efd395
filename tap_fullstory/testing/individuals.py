"""TYPE_INDIVIDUAL exports for the emulator, derived from the same events it serves.

FullStory exports the individuals who performed events in the export's time range, with their values
as FullStory knows them when the export runs. The emulator pins "when the export runs" to the end of
the time range (the organisation's end when it is open), so a file depends on its parameters alone:
an individual's counts, durations and last-* values are computed from all of its events before that
end, and its user variables are the ones on its latest event. What the events do not tell (a creation
time, an app key, an e-mail) is null, never "". Summing the events export over
[organisation start, end) therefore gives exactly the same counts.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field

from tap_fullstory.fields import INDIVIDUAL_FIELDS

from .data import Row, Source

#: Last-* fields copied from the individual's latest event.
_LAST = (("LastPage", "PageUrl"), ("LastIp", "PageIp"), ("LastLatLong", "PageLatLong"),
         ("LastBrowser", "PageBrowser"), ("LastDevice", "PageDevice"), ("LastPlatform", "PagePlatform"),
         ("LastOperatingSystem", "PageOperatingSystem"))


def individual_columns(universe: t.Sequence[str]) -> list[str]:
    """Every column an individuals export can have: the catalogue, then the user variables."""
    return [name for name, _ in INDIVIDUAL_FIELDS] + [k for k in universe if k.startswith("user_")]


@dataclass
class _Session:
    start: str | None
    pages: dict[t.Any, tuple[int, int]] = field(default_factory=dict)  # PageId -> (duration, active) ms
    events: int = 0

    def seconds(self) -> tuple[int, int]:
        return (sum(d for d, _ in self.pages.values()) // 1000, sum(a for _, a in self.pages.values()) // 1000)


@dataclass
class _Individual:
    created: str | None
    sessions: dict[tuple[t.Any, t.Any], _Session] = field(default_factory=dict)
    events: int = 0
    last: Row = field(default_factory=dict)
    active_in_range: bool = False

    def add(self, r: Row, in_range: bool) -> None:
        self.events += 1
        self.active_in_range |= in_range
        created = r.get("UserCreated")
        if isinstance(created, str) and created and (self.created is None or created < self.created):
            self.created = created
        key = (r.get("UserId"), r.get("SessionId"))
        session = self.sessions.get(key)
        if session is None:
            session = self.sessions[key] = _Session(r.get("SessionStart") or r.get("EventStart") or None)
        session.events += 1
        session.pages[r.get("PageId")] = (_ms(r.get("PageDuration")), _ms(r.get("PageActiveDuration")))
        if str(r.get("EventStart") or "") >= str(self.last.get("EventStart") or ""):
            self.last = r

    def row(self, indv_id: t.Any) -> Row:
        secs = [s.seconds() for s in self.sessions.values()]
        total, active = sum(s for s, _ in secs), sum(a for _, a in secs)
        n = len(self.sessions)
        last_key = max(self.sessions, key=lambda k: (self.sessions[k].start or "", str(k)))
        last_session = self.sessions[last_key]
        last_total, last_active = last_session.seconds()
        r = self.last
        out: Row = {
            "IndvId": indv_id, "Created": self.created, "Uid": _known(r.get("UserAppKey")),
            "DisplayName": _known(r.get("UserDisplayName")), "Email": _known(r.get("UserEmail")),
            "NumSessions": n, "NumPages": sum(len(s.pages) for s in self.sessions.values()),
            "NumEvents": self.events, "TotalSec": total, "ActiveSec": active,
            "AvgSessionSec": round(total / n, 2), "AvgSessionActiveSec": round(active / n, 2),
            "MaxSessionSec": max(s for s, _ in secs), "LastSessionNumPages": len(last_session.pages),
            "LastSessionNumEvents": last_session.events, "LastSessionSec": last_total,
            "LastSessionActiveSec": last_active, "LastSessionStart": last_session.start,
            "LastEventStart": _known(r.get("EventStart")),
        }
        out.update({name: _known(r.get(src)) for name, src in _LAST})
        out.update({k: v for k, v in r.items() if k.startswith("user_")})
        return out


def _known(value: t.Any) -> t.Any:
    """A value the events tell, or None: an individual's unknown value is null, never ""."""
    return None if value == "" else value


def _ms(value: t.Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def individual_rows(source: Source, start_us: int | None, end_us: int | None) -> t.Iterator[list[Row]]:
    """One row per individual with an event in [start, end), by IndvId; values as of `end`."""
    people: dict[t.Any, _Individual] = {}
    passes = [(None, start_us, False), (start_us, end_us, True)] if start_us is not None else [(None, end_us, True)]
    for lo, hi, in_range in passes:
        for batch in source.batches(lo, hi):
            for r in batch:
                indv = r.get("IndvId")
                person = people.get(indv)
                if person is None:
                    person = people[indv] = _Individual(created=None)
                person.add(r, in_range)
    rows = [person.row(indv) for indv, person in people.items() if person.active_in_range]
    rows.sort(key=lambda r: (r["IndvId"] is None, r["IndvId"] or 0))
    yield rows
