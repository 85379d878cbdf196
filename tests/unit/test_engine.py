"""The engine's promises over any sequence of events (hypothesis), on the shipped rules."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from points_service.adapters.rule_files import load_rule_dir
from points_service.domain.calendar import Calendar
from points_service.domain.engine import Decision, InformantState, decide, plan_event
from points_service.domain.events import Event
from points_service.domain.rules import RuleSet, build_rule_set

RULES = load_rule_dir(Path(__file__).resolve().parents[2] / "rules")
SHANGHAI = Calendar.named("Asia/Shanghai")
GRACE = timedelta(hours=72)
CAPS = {r.id: r.daily_points_cap for r in RULES.rules}
START = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)
FEATURED = "kepu-featured-example-0001"


def event(n: int, action: str, at: datetime, informant: str = "u1", **fields: str) -> Event:
    return Event(event_id=f"e{n}", informant_id=informant, action=action, occurred_at=at, **fields)  # type: ignore[arg-type]


def judge(state: InformantState, e: Event, now: datetime | None = None) -> Decision:
    plan = plan_event(e, RULES, SHANGHAI, now or e.occurred_at, GRACE)
    decision, _ = decide(plan, state)
    return decision


def action_events() -> st.SearchStrategy[tuple[str, dict[str, str]]]:
    content = st.sampled_from(["c1", "c2", "c3", "c4", "c5", FEATURED])
    people = st.sampled_from(["u1", "v1", "v2", "v3"])
    return st.one_of(
        st.tuples(st.sampled_from(["browse", "share", "post", "like"]), content).map(
            lambda t: (t[0], {"content_id": t[1]})
        ),
        st.tuples(st.sampled_from(["s1", "s2"]), people).map(
            lambda t: ("share_view", {"share_id": t[0], "viewer_id": t[1]})
        ),
        st.sampled_from(["login", "sign_in"]).map(lambda a: (a, {})),
    )


sequences = st.lists(
    st.tuples(action_events(), st.integers(min_value=0, max_value=3 * 24 * 60)), max_size=120
)


@given(sequences)
@settings(max_examples=150, deadline=None)
def test_caps_never_exceeded_and_lines_add_up(
    steps: list[tuple[tuple[str, dict[str, str]], int]],
) -> None:
    state = InformantState()
    paid: dict[tuple[int, str], int] = {}
    for n, ((action, fields), minutes) in enumerate(sorted(steps, key=lambda s: s[1])):
        d = judge(state, event(n, action, START + timedelta(minutes=minutes), **fields))
        assert d.p == sum(line.points for line in d.l)
        for line in d.l:
            assert line.points >= 0
            if line.rule in CAPS:
                key = (d.day, line.rule)
                paid[key] = paid.get(key, 0) + line.points
                cap = CAPS[line.rule]
                assert cap is None or paid[key] <= cap
    assert state.balance == sum(paid.values()) + sum(
        line.points
        for dec in state.decisions.values()
        for line in dec.l
        if ".streak_" in (line.rule or "")
    )


@given(sequences)
@settings(max_examples=100, deadline=None)
def test_duplicates_never_pay(steps: list[tuple[tuple[str, dict[str, str]], int]]) -> None:
    state = InformantState()
    for n, ((action, fields), minutes) in enumerate(sorted(steps, key=lambda s: s[1])):
        d = judge(state, event(n, action, START + timedelta(minutes=minutes), **fields))
        for line in d.l:
            if line.reason == "duplicate":
                assert line.points == 0
    # Every event once more, with fresh event ids: nothing pays twice on the same day.
    again = InformantState()
    for n, ((action, fields), minutes) in enumerate(sorted(steps, key=lambda s: s[1])):
        at = START + timedelta(minutes=minutes)
        judge(again, event(n, action, at, **fields))
        second = judge(again, event(10_000 + n, action, at, **fields))
        assert second.p == 0


def test_replay_returns_the_first_decision_and_credits_nothing() -> None:
    state = InformantState()
    e = event(1, "browse", START, content_id="c1")
    first = judge(state, e)
    plan = plan_event(e, RULES, SHANGHAI, START, GRACE)
    again, replayed = decide(plan, state)
    assert replayed and again == first and state.balance == 1


def test_cap_cuts_the_award_short_and_reports_daily_cap() -> None:
    state = InformantState()
    points = [judge(state, event(n, "post", START, content_id=f"p{n}")).l[0] for n in range(4)]
    assert [(x.points, x.reason) for x in points] == [
        (3, "credited"),
        (3, "credited"),
        (3, "credited"),
        (0, "daily_cap"),
    ]
    state = InformantState()
    for n in range(9):
        judge(state, event(n, "share", START, content_id=f"c{n}"))  # 18 points
    cut = judge(state, event(99, "share", START, content_id=FEATURED))  # 4 asked, 2 left
    assert (cut.p, cut.l[0].reason, cut.l[0].requested) == (2, "daily_cap", 4)
    assert cut.c == [1, 0, 0]  # a share past the cap still counts


def test_featured_counts_double_only_inside_its_window() -> None:
    inside = judge(InformantState(), event(1, "share", START, content_id=FEATURED))
    outside = judge(
        InformantState(), event(2, "share", datetime(2027, 1, 1, tzinfo=UTC), content_id=FEATURED)
    )
    assert (inside.p, outside.p) == (4, 2)


def test_share_view_self_and_forever_dedup() -> None:
    state = InformantState()
    own = judge(state, event(1, "share_view", START, share_id="s1", viewer_id="u1"))
    first = judge(state, event(2, "share_view", START, share_id="s1", viewer_id="v1"))
    later = judge(
        state, event(3, "share_view", START + timedelta(days=2), share_id="s1", viewer_id="v1")
    )
    other = judge(state, event(4, "share_view", START, share_id="s2", viewer_id="v1"))
    assert [(d.p, d.l[0].reason) for d in (own, first, later, other)] == [
        (0, "self_view"),
        (1, "credited"),
        (0, "duplicate"),
        (1, "credited"),
    ]
    assert [d.c[1] for d in (own, first, later, other)] == [0, 1, 0, 1]


def test_late_events_are_kept_but_credit_and_count_nothing() -> None:
    state = InformantState()
    now = START + timedelta(hours=73)
    d = judge(state, event(1, "share", START, content_id="c1"), now=now)
    assert (d.p, d.late, d.l[0].reason, d.c) == (0, True, "late", [0, 0, 0])
    assert state.balance == 0 and not state.days.get(d.day)


def test_stale_sign_in_gets_nothing() -> None:
    state = InformantState()
    d = judge(state, event(1, "sign_in", START), now=START + timedelta(days=1))
    assert (d.p, d.l[0].reason) == (0, "stale_sign_in")


def sign_ins(days: int, start: datetime) -> list[Decision]:
    state = InformantState()
    return [judge(state, event(n, "sign_in", start + timedelta(days=n))) for n in range(days)]


def test_streak_milestones() -> None:
    decisions = sign_ins(366, datetime(2026, 1, 1, 2, tzinfo=UTC))
    bonuses = {d.sk: d.p - 5 for d in decisions if d.p > 5}
    assert bonuses == {7: 10, 30: 30, 100: 100, 365: 365}
    assert decisions[-1].sk == 366


@given(
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 1)),
    st.integers(2, 40),
)
@settings(max_examples=100, deadline=None)
def test_streak_crosses_month_and_year_ends(start: datetime, days: int) -> None:
    decisions = sign_ins(days, start.replace(tzinfo=UTC))
    assert [d.sk for d in decisions] == list(range(1, days + 1))


def test_streak_follows_the_shanghai_midnight_not_utc() -> None:
    state = InformantState()
    # 15:59 UTC is 23:59 in Shanghai; 16:00 UTC the same UTC day is already tomorrow there.
    before = judge(state, event(1, "sign_in", datetime(2026, 12, 31, 15, 59, tzinfo=UTC)))
    after = judge(state, event(2, "sign_in", datetime(2026, 12, 31, 16, 0, tzinfo=UTC)))
    assert (before.sk, after.sk, after.p) == (1, 2, 5)
    same_day = judge(state, event(3, "sign_in", datetime(2027, 1, 1, 15, 59, tzinfo=UTC)))
    assert (same_day.p, same_day.l[0].reason) == (0, "duplicate")


def test_a_missed_day_restarts_the_streak() -> None:
    state = InformantState()
    at = datetime(2026, 11, 1, 2, tzinfo=UTC)
    streaks = [
        judge(state, event(n, "sign_in", at + timedelta(days=d))).sk
        for n, d in enumerate([0, 1, 3, 4])
    ]
    assert streaks == [1, 2, 1, 2]


def test_dry_run_changes_nothing() -> None:
    state = InformantState()
    e = Event(
        event_id="d1",
        informant_id="u1",
        action="browse",
        occurred_at=START,
        content_id="c1",
        dry_run=True,
    )
    d = judge(state, e)
    assert d.p == 1 and state.balance == 0 and not state.decisions and not state.days.get(d.day)


def rules_from(text: str) -> RuleSet:
    return build_rule_set({"campaign.toml": text.encode()})


CAMPAIGN = """
[[rules]]
id = "like"
action = "like"
points = 2
distinct = { by = ["content_id"] }
daily_count_cap = 2

[[rules]]
id = "winter-share-bonus"
action = "share"
points = 5
distinct = { by = ["content_id"], within = "ever" }
starts = 2026-12-01T00:00:00+08:00
ends = 2027-01-01T00:00:00+08:00
"""


def test_a_count_cap_pays_the_first_n_a_day() -> None:
    rules = rules_from(CAMPAIGN)
    state = InformantState()
    got = []
    for n in range(4):
        e = event(n, "like", START, content_id=f"c{n}")
        got.append(decide(plan_event(e, rules, SHANGHAI, START, GRACE), state)[0].l[0])
    assert [(x.points, x.reason) for x in got] == [
        (2, "credited"),
        (2, "credited"),
        (0, "daily_cap"),
        (0, "daily_cap"),
    ]


def test_a_rule_pays_only_inside_its_dates() -> None:
    rules = rules_from(CAMPAIGN)
    state = InformantState()
    for at, expected in [
        (datetime(2026, 11, 30, 15, 59, tzinfo=UTC), (0, "no_active_rule")),  # 23:59 +08
        (datetime(2026, 11, 30, 16, 0, tzinfo=UTC), (5, "credited")),  # 00:00 +08, Dec 1
        (datetime(2026, 12, 31, 16, 0, tzinfo=UTC), (0, "no_active_rule")),  # Jan 1 +08
    ]:
        e = event(int(at.timestamp()), "share", at, content_id=f"c{at.day}")
        d, _ = decide(plan_event(e, rules, SHANGHAI, at, GRACE), state)
        assert (d.p, d.l[0].reason) == expected
