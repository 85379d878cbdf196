"""The day against the rules (domain/catalogue.py): what is left, the streak's next
milestone after a missed day, and which campaigns run."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

from points_service.adapters.rule_files import load_rule_dir
from points_service.domain.catalogue import (
    actions_today,
    campaigns_now,
    listed,
    rule_today,
    streak_today,
)
from points_service.domain.rules import Rule

RULES = load_rule_dir(Path(__file__).resolve().parents[2] / "rules")
NOW = datetime(2026, 6, 1, 4, 0, tzinfo=UTC)
TODAY = 739_768  # an ordinal; only differences matter here


def rule(rule_id: str) -> Rule:
    return next(r for r in RULES.rules if r.id == rule_id)


def test_caps_and_once_a_day() -> None:
    share = rule_today(rule("share"), {"n:share": 4, "p:share": 8})
    assert (share.points_left, share.count_left) == (12, None)
    capped = rule_today(rule("share"), {"n:share": 12, "p:share": 20})
    assert capped.points_left == 0
    login = rule_today(rule("login"), {})
    assert (login.points_left, login.count_left) == (1, 1)
    assert rule_today(rule("login"), {"n:login": 1, "p:login": 1}).points_left == 0
    actions = {a.action: a for a in actions_today(RULES, {"a:share": 13, "ap:share": 20}, NOW)}
    assert set(actions) == {"login", "sign_in", "browse", "share", "share_view", "post", "like"}
    assert (actions["share"].count, actions["share"].points) == (13, 20)


def test_a_missed_day_restarts_the_count_to_the_next_milestone() -> None:
    kept = streak_today(RULES, 6, TODAY - 1, TODAY, NOW)  # signed in yesterday
    assert (kept.days, kept.done_today) == (6, False)
    assert kept.next is not None and (kept.next.days, kept.next.days_left) == (7, 1)
    lost = streak_today(RULES, 6, TODAY - 2, TODAY, NOW)  # missed yesterday
    assert lost.days == 0 and lost.next is not None and lost.next.days_left == 7
    top = streak_today(RULES, 400, TODAY, TODAY, NOW)  # past the last milestone
    assert top.done_today and top.next is None


def test_the_shipped_featured_list_runs_in_2026_only() -> None:
    assert [f.name for f in campaigns_now(RULES, NOW).featured] == ["example-featured"]
    later = NOW + timedelta(days=400)
    assert campaigns_now(RULES, later).featured == ()
    assert listed(RULES, later).featured == ()  # over: not listed any more
    assert len(listed(RULES, later).rules) == 7
