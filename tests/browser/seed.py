"""A small, deterministic programme history for Ningxia (province 640000) for the browser
tests: about forty informants over three cities and two institutions, and the events of
2026 from 1 January up to today (the real date in Asia/Shanghai) in the JSON Lines form
`points-service import` reads.

Everything comes from one `random.Random(SEED)`; only today's date decides how far the
history runs, and the clock's time of day only clamps today's events to the past. Every
informant stays under every daily cap of rules/default.toml (at most 10 shares, 3 posts,
5 likes, 10 browses and 30 share views a day, one sign-in), so what an event earns is its
rule's points, plus the sign-in streak bonuses: `Seed.points` and friends compute the
figures from the lists alone, for tests to check pages against.
"""

import json
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

SEED = 640000
TZ = ZoneInfo("Asia/Shanghai")
PROVINCE = "640000"
YEAR_START = date(2026, 1, 1)

# (city, county, weight): Yinchuan's three districts hold most informants.
COUNTIES = [
    ("640100", "640104", 10),  # 银川市 兴庆区
    ("640100", "640105", 9),  # 银川市 西夏区
    ("640100", "640106", 8),  # 银川市 金凤区
    ("640200", "640202", 7),  # 石嘴山市 大武口区
    ("640300", "640302", 6),  # 吴忠市 利通区
]

INSTITUTIONS: dict[str, dict[str, str]] = {
    "inst-a": {
        "name": "宁夏科学技术馆",
        "province": "640000",
        "city": "640100",
        "county": "640104",
    },
    "inst-b": {
        "name": "银川市第一中学",
        "province": "640000",
        "city": "640100",
        "county": "640105",
    },
}

POINTS = {"sign_in": 5, "browse": 1, "share": 2, "share_view": 1, "post": 3, "like": 1}
STREAK_BONUS = {7: 10, 30: 30, 100: 100, 365: 365}
COUNTED = {"share": "shares", "share_view": "share_views", "post": "posts"}

# How busy each month of 2026 is (Spring Festival in February is quiet; the autumn
# campaign is busy), so a monthly trend shows.
MONTH_FACTOR = {
    1: 0.55,
    2: 0.3,
    3: 0.7,
    4: 0.85,
    5: 1.0,
    6: 0.8,
    7: 0.6,
    8: 0.65,
    9: 1.15,
    10: 1.35,
    11: 1.2,
    12: 1.0,
}

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹"
GIVEN = [
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟",
    "涛", "明", "超", "秀英", "霞", "平", "刚", "桂英", "建华", "文", "华", "红", "玉兰",
    "志强", "海燕", "晓东", "春梅", "国庆", "丹", "鹏", "婷", "宁", "慧", "斌", "欣怡",
]  # fmt: skip

N_INFORMANTS = 40
DAILY_SHARERS = ("nx-001", "nx-002")  # share every day of 2026: the outstanding award
DORMANT_DAYS = 90  # no action in the last 90 days: dormant (rules/targets, the report)


@dataclass(frozen=True)
class Informant:
    informant_id: str
    name: str
    city: str
    county: str
    institution_id: str
    certified: bool
    registered_at: datetime
    type: str
    activity: float  # the chance of being active on a day of average busyness
    last_day: date | None  # their last possible active day (dormant: 90+ days ago)
    province: str = PROVINCE

    def profile(self) -> dict[str, Any]:
        """The line `points-service import-informants` reads (PUT /v1/informants/{id})."""
        return {
            "informant_id": self.informant_id,
            "name": self.name,
            "province": self.province,
            "city": self.city,
            "county": self.county,
            "institution_id": self.institution_id,
            "unit_name": INSTITUTIONS[self.institution_id]["name"],
            "type": self.type,
            "certified": self.certified,
            "registered_at": self.registered_at.isoformat(),
        }


@dataclass
class Seed:
    today: date
    informants: list[Informant]
    events: list[dict[str, Any]]
    institutions: dict[str, dict[str, str]] = field(default_factory=lambda: INSTITUTIONS)

    @property
    def by_id(self) -> dict[str, Informant]:
        return {i.informant_id: i for i in self.informants}

    @property
    def dormant(self) -> list[str]:
        """Informants registered 90+ days ago with no event in the last 90 days."""
        cutoff = self.today - timedelta(days=DORMANT_DAYS)
        last = self.last_activity()
        return sorted(
            i.informant_id
            for i in self.informants
            if i.registered_at.date() <= cutoff
            and (last.get(i.informant_id) is None or last[i.informant_id] <= cutoff)
        )

    def day_of(self, event: dict[str, Any]) -> date:
        return datetime.fromisoformat(event["occurred_at"]).astimezone(TZ).date()

    def select(
        self, first: date | None = None, last: date | None = None
    ) -> Iterable[dict[str, Any]]:
        for e in self.events:
            d = self.day_of(e)
            if (first is None or d >= first) and (last is None or d <= last):
                yield e

    def counts(
        self, metric: str, first: date | None = None, last: date | None = None
    ) -> Counter[str]:
        """shares, share_views or posts per informant over [first, last] (days)."""
        actions = {a for a, m in COUNTED.items() if m == metric}
        return Counter(
            e["informant_id"] for e in self.select(first, last) if e["action"] in actions
        )

    def points(self, first: date | None = None, last: date | None = None) -> Counter[str]:
        """Points per informant over [first, last]: each event's rule points (nothing is
        capped or a duplicate), plus a streak bonus on the 7th, 30th, 100th and 365th
        consecutive sign-in day, counted on that day."""
        total: Counter[str] = Counter()
        for e in self.select(first, last):
            total[e["informant_id"]] += POINTS[e["action"]]
        for who, days in self._sign_in_days().items():
            run, previous = 0, None
            for d in days:
                run = run + 1 if previous is not None and d == previous + timedelta(1) else 1
                previous = d
                inside = (first is None or d >= first) and (last is None or d <= last)
                if run in STREAK_BONUS and inside:
                    total[who] += STREAK_BONUS[run]
        return total

    def active_days(
        self, first: date | None = None, last: date | None = None
    ) -> dict[str, set[date]]:
        days: dict[str, set[date]] = defaultdict(set)
        for e in self.select(first, last):
            days[e["informant_id"]].add(self.day_of(e))
        return dict(days)

    def last_activity(self) -> dict[str, date]:
        return {who: max(days) for who, days in self.active_days().items()}

    def by_month(self, metric: str) -> dict[str, int]:
        """A metric ('points' or a counter) over the whole province, by month ('2026-03')."""
        out: dict[str, int] = {}
        month = YEAR_START
        while month <= self.today:
            following = (month.replace(day=28) + timedelta(days=4)).replace(day=1)
            last = following - timedelta(days=1)
            figures = (
                self.points(month, last) if metric == "points" else self.counts(metric, month, last)
            )
            out[month.strftime("%Y-%m")] = sum(figures.values())
            month = following
        return out

    def where(self, predicate: Callable[[Informant], bool]) -> set[str]:
        return {i.informant_id for i in self.informants if predicate(i)}

    def _sign_in_days(self) -> dict[str, list[date]]:
        days: dict[str, set[date]] = defaultdict(set)
        for e in self.events:
            if e["action"] == "sign_in":
                days[e["informant_id"]].add(self.day_of(e))
        return {w: sorted(d) for w, d in days.items()}

    # --- files for the CLI ---------------------------------------------------------

    def write_profiles(self, path: Path) -> Path:
        lines = [json.dumps(i.profile(), ensure_ascii=False) for i in self.informants]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def write_events(self, path: Path) -> Path:
        lines = [json.dumps(e, ensure_ascii=False) for e in self.events]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path


def shanghai_now() -> datetime:
    return datetime.now(TZ)


def _names(rng: random.Random, n: int) -> list[str]:
    pool = [s + g for s in SURNAMES for g in GIVEN]
    return rng.sample(pool, n)  # distinct by construction


def _informants(rng: random.Random, today: date) -> list[Informant]:
    names = _names(rng, N_INFORMANTS)
    places = [(c, k) for c, k, w in COUNTIES for _ in range(w)]
    rng.shuffle(places)
    people = []
    dormant_at = {8, 17, 26, 35}  # these stop well before the last 90 days
    for n in range(N_INFORMANTS):
        who = f"nx-{n + 1:03d}"
        city, county = places[n % len(places)]
        daily = who in DAILY_SHARERS
        if daily or n in dormant_at or n < 20:
            registered = date(2025, 1, 10) + timedelta(days=rng.randrange(330))
        else:
            registered = date(2025, 3, 1) + timedelta(days=rng.randrange(560))
        registered = min(registered, today - timedelta(days=3))
        at = datetime.combine(registered, time(9 + rng.randrange(9), rng.randrange(60)), TZ)
        last_day = None
        if n in dormant_at:
            last_day = today - timedelta(days=DORMANT_DAYS + 5 + rng.randrange(120))
        people.append(
            Informant(
                informant_id=who,
                name=names[n],
                city=city,
                county=county,
                institution_id="inst-a" if n % 2 == 0 else "inst-b",
                certified=daily or n % 7 != 3,  # most are real-name certified
                registered_at=at,
                type=rng.choice(["individual"] * 6 + ["county", "township", "city"]),
                activity=1.0 if daily else rng.choice([0.06, 0.1, 0.15, 0.2, 0.3, 0.45]),
                last_day=last_day,
            )
        )
    return people


def _stamp(day: date, minute: int, now: datetime) -> str:
    """An instant on `day` (Shanghai), `minute` minutes after midnight, never later than
    a minute before `now` (today's events are in the past)."""
    at = datetime.combine(day, time(), TZ) + timedelta(minutes=minute)
    latest = now - timedelta(minutes=1)
    if at > latest:
        start = datetime.combine(day, time(), TZ)
        at = max(start, latest - timedelta(seconds=minute % 50))
    return at.isoformat(timespec="seconds")


def _day_events(
    rng: random.Random, who: Informant, day: date, now: datetime, daily_sharer: bool
) -> list[dict[str, Any]]:
    """One active day's events for one informant, under every daily cap."""
    out: list[dict[str, Any]] = []
    tag = f"{who.informant_id}-{day:%m%d}"
    minute = 7 * 60 + rng.randrange(120)

    def add(action: str, n: int, **fields: str) -> dict[str, Any]:
        nonlocal minute
        minute = min(minute + 1 + rng.randrange(25), 23 * 60 + 50)
        event = {
            "event_id": f"{tag}-{action}-{n}",
            "informant_id": who.informant_id,
            "action": action,
            "occurred_at": _stamp(day, minute, now),
            **fields,
        }
        out.append(event)
        return event

    if daily_sharer or rng.random() < 0.75:
        add("sign_in", 0)
    articles = [f"kp-{day:%Y%m%d}-{k:02d}" for k in range(12)]  # the day's articles
    for n, content in enumerate(rng.sample(articles, rng.randint(0, 3))):
        add("browse", n, content_id=content)
    shares = rng.choice([2, 2, 3]) if daily_sharer else rng.choice([0, 0, 1, 1, 1, 2, 3])
    if who.informant_id == DAILY_SHARERS[0]:
        shares = 3  # the province's top sharer, by a clear margin
    viewers = 0
    for n, content in enumerate(rng.sample(articles, shares)):
        share = add("share", n, content_id=content)
        for v in range(rng.choice([0, 0, 0, 1, 1, 2, 3])):
            if viewers >= 30:
                break
            viewers += 1
            add(
                "share_view",
                len(out),
                share_id=share["event_id"],
                viewer_id=f"viewer-{rng.randrange(5000):04d}-{v}",
            )
    for n, content in enumerate(rng.sample(articles, rng.choice([0, 0, 0, 1, 2]))):
        add("like", n, content_id=content)
    if rng.random() < (0.25 if daily_sharer else 0.12):
        for n in range(rng.choice([1, 1, 2, 3])):
            add("post", n, content_id=f"post-{tag}-{n}")
    return out


def generate(now: datetime | None = None) -> Seed:
    """The history up to `now` (default: the real time in Asia/Shanghai)."""
    now = (now or shanghai_now()).astimezone(TZ)
    today = now.date()
    rng = random.Random(SEED)
    informants = _informants(rng, today)
    events: list[dict[str, Any]] = []
    day = YEAR_START
    while day <= today:
        factor = MONTH_FACTOR[day.month] * (0.6 if day.weekday() >= 5 else 1.0)
        for who in informants:
            daily = who.informant_id in DAILY_SHARERS
            chance = rng.random()  # drawn for everyone, every day: stable sequences
            if day < who.registered_at.date() or (who.last_day and day > who.last_day):
                continue
            if daily or chance < who.activity * factor or (day == today and chance < 0.5):
                events += _day_events(rng, who, day, now, daily)
        day += timedelta(days=1)
    return Seed(today=today, informants=informants, events=events)


if __name__ == "__main__":  # a look at what it makes: python -m tests.browser.seed
    seed = generate()
    print(f"{len(seed.informants)} informants, {len(seed.events):,} events up to {seed.today}")
    print("actions:", dict(Counter(e["action"] for e in seed.events)))
    print("shares by month:", seed.by_month("shares"))
    print("top sharers:", seed.counts("shares").most_common(3))
    print("dormant:", seed.dormant)
