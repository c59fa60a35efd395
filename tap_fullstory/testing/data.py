"""Row sources for the emulator: a deterministic synthetic organisation and a rows-file replay.

Every synthetic event of hour H is derived from ``(seed, H)`` alone, so any ``[start, end)`` range can be
produced without generating earlier hours, and the same options always yield the same rows. Rows imitate
FullStory's export: 16-digit integer ids (some above 2**53), millisecond RFC 3339 timestamps with trailing zeros,
``""`` for unknown text, absent keys for inapplicable fields, typed custom variables with dotted names.
"""

from __future__ import annotations

import json
import random
import time
import typing as t
from bisect import bisect_left
from operator import itemgetter
from pathlib import Path

from tap_fullstory.fields import MOBILE_FIELDS, STANDARD_FIELDS
from tap_fullstory.testing.values import format_ms, parse_float, parse_rfc3339_us

Row = dict[str, t.Any]
HOUR_MS = 3_600_000
_MMSS = [f"{m:02d}:{s:02d}" for m in range(60) for s in range(60)]


# ---------------------------------------------------------------- sources
#: The `misfit_values` fault: (field, value) pairs that do not fit the field's catalogue type, for
#: events and individuals; each misfit row gets the next three that it has (never EventStart, the
#: sort key, nor IndvId, the individuals' key). '' in a typed column, a word, a fraction, ...
MISFITS: tuple[tuple[str, t.Any], ...] = (
    ("UserCreated", "yesterday"), ("PageDuration", "abc"), ("PageNumErrors", 1.5),
    ("UserCreated", ""), ("PageScreenWidth", True), ("PageUrl", 42),
    ("PageStart", "2024-02-30T00:00:00.000Z"), ("EventCumulativeLayoutShift", "0.1"),
    ("SessionStart", 1_700_000_000_000), ("PageIp", ["203.0.113.1"]),
    ("PageNumEvents", 2**63), ("PageActiveDuration", ""),
    ("Created", ""), ("NumSessions", 1.5), ("TotalSec", "abc"), ("LastEventStart", "not a time"),
    ("Email", 0), ("Created", "2024-01-01"), ("NumPages", "12"), ("LastSessionStart", ""),
)


def with_misfits(row: Row, number: int) -> Row:
    """Row `number` (1-based) with three values of `MISFITS` put in place of fields it has."""
    out = dict(row)
    at, placed = 3 * number, 0
    for step in range(len(MISFITS)):
        name, value = MISFITS[(at + step) % len(MISFITS)]
        if name in out and placed < 3:
            out[name] = value
            placed += 1
    return out


class Source(t.Protocol):
    """What the export builder needs from a row source."""

    range_start: int  # unix seconds, inclusive
    range_end: int  # unix seconds, exclusive

    def universe(self) -> list[str]: ...

    def batches(self, start_us: int | None, end_us: int | None, *, legacy: bool = False,
                size: int = 2000) -> t.Iterator[list[Row]]: ...


class RowsFileSource:
    """Replays a JSON array file (e.g. hauser's raw.json), stable-sorted by EventStart, rows verbatim."""

    def __init__(self, path: str | Path) -> None:
        rows = json.loads(Path(path).read_text(encoding="utf-8"), parse_float=parse_float)
        if not isinstance(rows, list):
            raise ValueError(f"{path}: expected one JSON array of event objects")
        keyed = [(parse_rfc3339_us(r["EventStart"]), r) for r in rows if r.get("EventStart")]
        keyed.sort(key=itemgetter(0))
        self._us = [k for k, _ in keyed]
        self._rows = [r for _, r in keyed]
        seen: dict[str, None] = {}
        for r in self._rows:
            seen.update(dict.fromkeys(r))
        self._universe = list(seen)
        day = 86_400
        self.range_start = (self._us[0] // 1_000_000) // day * day if keyed else 0
        self.range_end = ((self._us[-1] // 1_000_000) // day + 1) * day if keyed else day

    def universe(self) -> list[str]:
        return list(self._universe)

    def batches(self, start_us: int | None, end_us: int | None, *, legacy: bool = False,
                size: int = 2000) -> t.Iterator[list[Row]]:
        lo = 0 if start_us is None else bisect_left(self._us, start_us)
        hi = len(self._us) if end_us is None else bisect_left(self._us, end_us)
        for i in range(lo, hi, size):
            yield self._rows[i:min(i + size, hi)]


# ---------------------------------------------------------------- synthetic organisation
_PROFILES = (  # UA, browser, version, OS, device, platform, screen w/h, viewport w/h
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
     "Chrome", "120.0.0.0", "Windows", "Desktop", "Web", 1920, 1080, 1903, 937),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15",
     "Safari", "17.2", "OS X", "Desktop", "Web", 1440, 900, 1440, 789),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
     "Firefox", "121.0", "Linux", "Desktop", "Web", 2560, 1440, 2543, 1307),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36",
     "Chrome Mobile", "120.0.6099.144", "Android", "Mobile", "Android", 412, 915, 412, 839),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1",
     "Mobile Safari", "17.2", "iOS", "Mobile", "iOS", 390, 844, 390, 664),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91",
     "Edge", "120.0.2210.91", "Windows", "Desktop", "Web", 1536, 864, 1519, 746),
)
_SITE = "https://shop.example.com"
_PAGES = (  # path, page name
    ("/", "Home"), ("/products/apple-123", "Product detail"), ("/products/caf%C3%A9-au-lait", "Product detail"),
    ("/cart", "Cart"), ("/checkout?step=2&coupon=SPRING", "Checkout"), ("/search?q=%22fresh%22,fruit", "Search"),
    ("/blog/%C3%BCber-uns", "Über uns"), ("/account/orders?page=3", "Orders"),
)
_TARGETS = (  # target text, CSS selector
    ("Add to cart", "html body div#app main .product-card button.add-to-cart"),
    ('Buy "now", pay later', "html body div#app main form.checkout button[type=submit]"),
    ("Größe wählen\nXL", "html body div#app main select#size"),
    ("🍎 Apple, 1 kg", "html body div#app main ul.results li:nth-child(2) a"),
    ("Continue →", "html body div#app footer a.next"),
    ("", "html body div#app header input#search"),
)
_EVENT_NAMES = ("Order Completed", "Product Viewed", "Coupon Applied", "Signup", "Search", "Error shown")
_EVENT_VARS = (  # custom-variable names per custom event, matching _evt_vars below
    ("evt_order.order_id_str", "evt_order.total_real", "evt_order.items_real", "evt_order.skus_strs",
     "evt_order.quantities_ints", "evt_gift_bool"),
    ("evt_product.name_str", "evt_product.price_real", "evt_featuredFruit_real", "evt_description_str"),
    ("evt_coupon_str", "evt_discount_int", "evt_validUntil_date"),
    ("evt_plan_str", "evt_trial_bool"),
    ("evt_query_str", "evt_results_int"),
    (),
)
_USER_VARS = ("user_plan_str", "user_age_int", "user_vip_bool", "user_ltv_real", "user_signupDate_date",
              "user_tags_strs", "user_favoriteIds_ints")
_PAGE_VARS = ("page_category_str", "page_abTest_str", "page_itemCount_int", "page_price_real",
              "page_campaign_str")
_TYPES = (["click"] * 30 + ["custom"] * 14 + ["change"] * 8 + ["seen"] * 8 + ["request"] * 10
          + ["console_message"] * 4 + ["custom_error"] * 2 + ["uservar"] * 1 + ["exception"] * 1
          + ["first_input_delay"] * 1 + ["cumulative_layout_shift"] * 1 + ["copy"] * 1)
#: Event fields FullStory's own SDK documents but hauser (and this tap's catalogue) never knew: with
#: ``new_fields`` every ``seen`` event carries them, as an export would after FullStory added them.
NEW_FIELDS = ("EventDuration", "EventSecondaryDuration")
_ID_LO, _ID_HI = 10**15, 10**16
_BIG_ID = 2**53 + 1  # > 2**53: breaks float parsers


def _stamp(prefix: str, ms_in_hour: int) -> str:
    s, r = divmod(ms_in_hour, 1000)
    return f"{prefix}{_MMSS[s]}.{r:03d}Z"


def _evt_vars(rng: random.Random, which: int) -> Row:
    if which == 0:
        n = rng.randint(1, 3)
        return {"evt_order.order_id_str": f"ORD-{rng.randrange(10**6):06d}",
                "evt_order.total_real": round(rng.uniform(5, 500), 2), "evt_order.items_real": n,
                "evt_order.skus_strs": [f"SKU-{rng.randrange(1000)}" for _ in range(n)],
                "evt_order.quantities_ints": [rng.randint(1, 5) for _ in range(n)],
                "evt_gift_bool": rng.random() < 0.2}
    if which == 1:
        return {"evt_product.name_str": rng.choice(("Apple", "Crème brûlée", "Kiwi, gold", 'Mango "Alphonso"')),
                "evt_product.price_real": round(rng.uniform(0.5, 30), 2), "evt_featuredFruit_real": rng.randint(0, 9),
                "evt_description_str": "Extra organic,\n\"fresh\" — 100% naïve 🍐"}
    if which == 2:
        return {"evt_coupon_str": "SPRING, 10% off", "evt_discount_int": rng.choice((5, 10, 15)),
                "evt_validUntil_date": "2024-12-31T00:00:00.000Z"}
    if which == 3:
        return {"evt_plan_str": rng.choice(("free", "pro", "enterprise")), "evt_trial_bool": rng.random() < 0.5}
    if which == 4:
        return {"evt_query_str": rng.choice(('café "au lait"', "apples, pears", "日本茶")),
                "evt_results_int": rng.randrange(0, 200)}
    return {}


class SyntheticSource:
    """A deterministic fake FullStory organisation over ``[range_start, range_end)``."""

    def __init__(self, *, seed: int = 1, start_s: int, end_s: int, events_per_hour: int = 60,
                 users: int = 50, mobile: bool = False, new_fields: bool = False) -> None:
        if end_s <= start_s:
            raise ValueError("end must be after start")
        self.seed, self.events_per_hour, self.mobile = seed, max(0, int(events_per_hour)), mobile
        self.new_fields = new_fields
        self.range_start, self.range_end = start_s, end_s
        rng = random.Random(f"users:{seed}")
        self._users = [self._make_user(rng, i) for i in range(max(1, users))]
        self._users_legacy = [
            {("PageAgent" if k == "PageUserAgent" else k): v for k, v in u.items()} for u in self._users
        ]

    def _make_user(self, rng: random.Random, i: int) -> Row:
        prof = _PROFILES[rng.randrange(len(_PROFILES))]
        uid = _BIG_ID + i if i == 0 else rng.randrange(_ID_LO, _ID_HI)
        identified = rng.random() < 0.6
        created_ms = (self.range_start - rng.randrange(0, 400 * 86_400)) * 1000 + rng.randrange(1000)
        u: Row = {
            "IndvId": uid if i % 5 else rng.randrange(_ID_LO, _ID_HI), "UserId": uid,
            "UserCreated": format_ms(created_ms),
            "UserAppKey": f"user-{i:05d}" if identified else "",
            "UserDisplayName": rng.choice(("Zoë Müller", "O'Brien, Pat", "User " + str(rng.randrange(99999)), "李雷")),
            "UserEmail": f"user{i}@example.com" if identified else "",
            "PageIp": "" if rng.random() < 0.2 else f"203.0.113.{rng.randrange(1, 255)}",
            "PageLatLong": f"{rng.uniform(-60, 60):.4f},{rng.uniform(-120, 120):.4f}",
            "PageUserAgent": prof[0], "PageBrowser": prof[1], "PageBrowserVersion": prof[2],
            "PageOperatingSystem": prof[3], "PageDevice": prof[4], "PagePlatform": prof[5],
            "PageScreenWidth": prof[6], "PageScreenHeight": prof[7], "PageViewportWidth": prof[8],
            "PageViewportHeight": prof[9],
        }
        if self.mobile:
            app = prof[5] in ("Android", "iOS")
            u.update({"AppName": "Fruit Shoppe" if app else "", "AppPackageName": "com.example.fruitshoppe" if app else "",
                      "AppDeviceModel": "Pixel 8" if prof[5] == "Android" else "iPhone15,2" if app else "",
                      "AppDeviceVendor": "Google" if prof[5] == "Android" else "Apple" if app else "",
                      "AppVersion": "3.1.4" if app else "", "AppOsVersion": "14" if prof[5] == "Android" else "17.2" if app else ""})
        for name in rng.sample(_USER_VARS, rng.randint(1, 3)):
            u[name] = {"str": "pro, annual", "int": rng.randint(18, 90), "bool": rng.random() < 0.5,
                       "real": round(rng.uniform(0, 5000), 2), "date": format_ms(created_ms),
                       "strs": ["beta", "vip"], "ints": [rng.randrange(100) for _ in range(3)]}[name.rsplit("_", 1)[1]]
        return u

    def universe(self) -> list[str]:
        names = [n for n, _ in STANDARD_FIELDS]
        names += [n for n, _ in MOBILE_FIELDS] if self.mobile else []
        names += list(NEW_FIELDS) if self.new_fields else []
        return names + list(_USER_VARS + _PAGE_VARS) + [n for grp in _EVENT_VARS for n in grp]

    def hour_count(self, h: int) -> int:
        """Events in hour h (unix hours) before clipping to the range; ±10 % around events_per_hour."""
        eph = self.events_per_hour
        return eph + random.Random(f"n:{self.seed}:{h}").randint(-(eph // 10), eph // 10)

    def hour(self, h: int, *, legacy: bool = False) -> list[tuple[int, Row, Row]]:
        """All events of unix hour h as (epoch ms, page template, event fields), stably sorted by time."""
        n = self.hour_count(h)
        rng = random.Random(f"hour:{self.seed}:{h}")
        rand = rng.random

        def ri(lo: int, hi: int) -> int:  # randrange without its overhead: the hot path
            return lo + int(rand() * (hi - lo))

        prefix = time.strftime("%Y-%m-%dT%H:", time.gmtime(h * 3600))
        base = h * HOUR_MS
        users = self._users_legacy if legacy else self._users
        sel_key = "EventTargetSelectorTok" if legacy else "EventTargetSelector"
        ntypes, mobile = len(_TYPES), self.mobile
        out: list[tuple[int, Row, Row]] = []
        while len(out) < n:
            utpl = users[ri(0, len(users))]
            sid = ri(_ID_LO, _ID_HI)
            t0 = t = ri(0, 3_480_000)
            for _ in range(ri(1, 5)):
                if len(out) >= n or t >= 3_590_000:
                    break
                offs, o = [], 0
                for _ in range(min(n - len(out), ri(3, 26))):
                    if t + o >= HOUR_MS:
                        break
                    offs.append(o)
                    o += ri(50, 9000)
                k = len(offs)
                dur = o + ri(0, 20_000)
                path, pname = _PAGES[ri(0, len(_PAGES))]
                tpl = utpl.copy()
                tpl.update({"SessionId": sid, "PageId": ri(_ID_LO, _ID_HI), "SessionStart": _stamp(prefix, t0),
                            "PageStart": _stamp(prefix, t), "PageName": pname, "PageUrl": _SITE + path,
                            "PageRefererUrl": "" if rand() < 0.3 else "https://www.google.com/",
                            "PageDuration": dur, "PageActiveDuration": ri(dur // 3, dur + 1),
                            "PageNumEvents": k, "PageNumDerivedEvents": ri(0, 3),
                            "PageNumInfos": ri(0, 5), "PageNumWarnings": ri(0, 3),
                            "PageNumErrors": ri(0, 2)})
                if rand() > 0.01:
                    tpl["PageClusterId"] = ri(1, 2000)
                for name in _PAGE_VARS[: ri(1, 4)]:
                    tpl[name] = {"page_category_str": "fruit, fresh", "page_abTest_str": "checkout-v2 (variant B)",
                                 "page_itemCount_int": ri(0, 40), "page_price_real": 2.5,
                                 "page_campaign_str": "spring_sale_2024"}[name]
                if mobile:
                    tpl["AppViewName"] = "MainActivity" if utpl["AppName"] else ""
                for i, off in enumerate(offs):
                    ms = t + off
                    etype = "navigate" if i == 0 else "load" if i == 1 else _TYPES[int(rand() * ntypes)]
                    ev: Row = {"EventStart": _stamp(prefix, ms), "EventType": etype, "EventPageOffset": ms - t,
                               "EventSessionOffset": ms - t0}
                    self._event_fields(rng, ri, ev, etype, sel_key, mobile)
                    out.append((base + ms, tpl, ev))
                    if rand() < 0.002:  # FullStory exports true repeats: identical on every field
                        out.append((base + ms, tpl, ev))
                t += dur + ri(1000, 60_000)
        out.sort(key=itemgetter(0))
        return out

    @staticmethod
    def _event_fields(rng: random.Random, ri: t.Callable[[int, int], int], ev: Row, etype: str, sel_key: str,
                      mobile: bool) -> None:
        rand = rng.random
        if etype in ("click", "change", "copy", "seen"):
            text, sel = _TARGETS[ri(0, len(_TARGETS))]
            ev[sel_key] = sel
            if etype != "seen":
                ev["EventTargetText"] = text
            else:
                ev["EventSubType"] = "rendered" if rand() < 0.5 else "visible"
            if etype == "click":
                r = rand()
                ev["EventModFrustrated"] = ri(1, 6) if r < 0.03 else 0
                if r < 0.05:
                    ev["EventModDead"] = 1
                if r > 0.97:
                    ev["EventModError"] = 1
        elif etype == "navigate":
            ev["EventSubType"] = ("navigate", "reload", "back_forward")[int(rand() * 2.2)]
            ev["PageMaxScrollDepthPercent"] = ri(0, 101)
        elif etype == "load":
            dcl = ri(200, 3000)
            ev.update({"LoadDomContentTime": dcl, "LoadEventTime": dcl + ri(0, 2000),
                       "LoadFirstPaintTime": ri(100, dcl + 1), "LoadLargestPaintTime": dcl + ri(0, 3000)})
        elif etype in ("custom", "custom_error"):
            which = ri(0, len(_EVENT_NAMES))
            ev["EventCustomName"] = _EVENT_NAMES[which]
            if etype == "custom":
                ev.update(_evt_vars(rng, which))
            else:
                ev["EventVarErrorKind"] = "TYPE_MISMATCH"
                ev["EventVarFields"] = "evt_order.total_real"
        elif etype == "request":
            ev.update({"ReqUrl": _SITE + ("/api/cart", "/api/search?q=a,b", "/api/orders")[ri(0, 3)],
                       "ReqMethod": "GET" if rand() < 0.7 else "POST", "ReqStatus": (200, 200, 201, 404, 500)[ri(0, 5)]})
        elif etype == "console_message":
            ev["EventSubType"] = "error"
            ev["EventModError"] = 2
        elif etype == "exception":
            ev["EventSubType"] = "uncaught"
            ev["EventModError"] = 3
            ev["EventWebSourceFileUrl"] = _SITE + "/static/js/main.3f2a1c.js"
            if mobile:
                ev["EventMobileSourceFile"] = ""
        elif etype == "first_input_delay":
            ev["EventFirstInputDelay"] = ri(1, 400)
        elif etype == "cumulative_layout_shift":
            ev["EventCumulativeLayoutShift"] = round(rand() * 0.5, 4) + 0.0001
        if rand() < 0.002:
            ev["EventModSuspicious"] = 1 if rand() < 0.5 else 2

    def batches(self, start_us: int | None, end_us: int | None, *, legacy: bool = False,
                size: int = 2000) -> t.Iterator[list[Row]]:
        """Rows with start <= EventStart < end (clipped to the organisation), hour by hour, in batches."""
        lo_ms = self.range_start * 1000 if start_us is None else max(self.range_start * 1000, -(-start_us // 1000))
        hi_ms = self.range_end * 1000 if end_us is None else min(self.range_end * 1000, -(-end_us // 1000))
        for h in range(lo_ms // HOUR_MS, -(-hi_ms // HOUR_MS)):
            if lo_ms >= hi_ms:
                return
            events = self.hour(h, legacy=legacy)
            if h * HOUR_MS < lo_ms or (h + 1) * HOUR_MS > hi_ms:
                events = [e for e in events if lo_ms <= e[0] < hi_ms]
            new = self.new_fields
            for i in range(0, len(events), size):
                batch = []
                for ms, tpl, ev in events[i:i + size]:
                    row = tpl.copy()
                    row.update(ev)
                    if new and ev["EventType"] == "seen":  # no random draw: other rows are unchanged
                        row["EventDuration"] = rendered = 500 + ms % 9500
                        row["EventSecondaryDuration"] = rendered * 3 // 4
                    batch.append(row)
                yield batch
