"""Periods, scopes and board definitions: pure domain code."""

from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from points_service.domain.boards import (
    Placement,
    Window,
    board_writes,
    build_board_set,
    metric_values,
    parse_scope,
    region_problems,
)
from points_service.domain.periods import PERIOD_KINDS, parse_period, period_of, periods_of
from points_service.domain.rules import RuleSetInvalid

ROOT = Path(__file__).resolve().parents[2]


def ordinal(text: str) -> int:
    return date.fromisoformat(text).toordinal()


def test_period_keys_follow_the_api() -> None:
    day = ordinal("2026-11-28")  # a Saturday in ISO week 48
    assert [p.key for p in periods_of(day)] == [
        "day:2026-11-28",
        "week:2026-W48",
        "month:2026-11",
        "year:2026",
        "all",
    ]
    week = period_of("week", day)
    assert (week.first_day, week.last_day) == (ordinal("2026-11-23"), ordinal("2026-11-29"))
    # ISO years: 2027-01-01 is a Friday of 2026-W53
    assert period_of("week", ordinal("2027-01-01")).key == "week:2026-W53"
    assert period_of("month", ordinal("2028-02-10")).last_day == ordinal("2028-02-29")
    assert period_of("month", day).next().key == "month:2026-12"


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31)))
def test_every_day_lies_in_its_periods_and_keys_parse_back(d: date) -> None:
    for period in periods_of(d.toordinal()):
        assert period.contains(d.toordinal())
        assert parse_period(period.key) == period
        if period.bounded:
            assert not period.contains(period.first_day - 1)
            assert not period.contains(period.last_day + 1)
            assert period.next().first_day == period.last_day + 1


@pytest.mark.parametrize(
    "key", ["day:2026-02-30", "week:2026-W54", "month:2026-13", "year:26", "days:2026", ""]
)
def test_bad_period_keys_are_refused(key: str) -> None:
    with pytest.raises(ValueError, match="not a period"):
        parse_period(key)


def test_scopes_and_region_codes() -> None:
    assert parse_scope("all") == ("all", "all")
    assert parse_scope("county:640104") == ("county", "county:640104")
    assert parse_scope("institution:inst-7") == ("institution", "institution:inst-7")
    for bad in ("county:640100", "province:640100", "city:64", "planet:earth", "institution:"):
        with pytest.raises(ValueError, match=bad.split(":")[0] if ":" in bad else bad):
            parse_scope(bad)
    assert region_problems("640000", "640100", "640104") == []
    assert region_problems("640000", "650100", None) == [
        ("city", "the city does not belong to the province")
    ]
    assert [f for f, _ in region_problems("640000", "640100", "640204")] == ["county"]
    assert [f for f, _ in region_problems(None, "640100", None)] == ["city"]
    assert [f for f, _ in region_problems("64000", None, None)] == ["province"]


def _shipped() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (ROOT / "leaderboards").glob("*.toml")}


def test_the_shipped_file_keeps_every_combination_product_names() -> None:
    boards = build_board_set(_shipped())
    for metric in ("points", "shares", "share_views", "posts"):
        for scope in ("all", "province", "city", "county", "institution"):
            for period in PERIOD_KINDS:
                assert boards.has(metric, scope, period), (metric, scope, period)
    placement = Placement("640000", "640100", "640104", "inst-1")
    writes = board_writes(boards, placement, ordinal("2026-11-28"), metric_values(3, [1, 0, 0]))
    # two metrics (points, shares) x five scopes x five periods
    assert len(writes) == 50
    assert {(w.board.metric, w.delta) for w in writes} == {("points", 3), ("shares", 1)}
    assert {w.board.scope for w in writes} == {
        "all",
        "province:640000",
        "city:640100",
        "county:640104",
        "institution:inst-1",
    }
    # no profile yet: the `all` boards only; nothing earned: no board at all
    assert {w.board.scope for w in board_writes(boards, Placement(), 1, {"points": 1})} == {"all"}
    assert board_writes(boards, placement, 1, metric_values(0, [0, 0, 0])) == []


def test_board_files_are_validated_naming_file_board_and_field() -> None:
    with pytest.raises(RuleSetInvalid) as caught:
        build_board_set(
            {
                "a.toml": b'[[boards]]\nmetric = "pts"\nscopes = ["all"]\nperiods = ["day"]\n',
                "b.toml": (
                    b'[[boards]]\nmetric = "posts"\nscopes = ["all", "all"]\nperiods = ["week"]\n'
                    b'[[boards]]\nmetric = "posts"\nscopes = ["all"]\nperiods = ["day"]\n'
                ),
                "c.toml": b"[retention_days]\nday = -1\n",
            }
        )
    text = str(caught.value)
    assert "a.toml: board 'pts': field `metric`" in text
    assert "b.toml: board 'posts': field `scopes`: lists a value twice" in text
    assert "b.toml: board 'posts': field `metric`: also defined in b.toml" in text
    assert "c.toml: field `retention_days[...]`: Expected `int` >= 0" in text
    with pytest.raises(RuleSetInvalid, match="no retention is set"):
        build_board_set(
            {"d.toml": b'[[boards]]\nmetric = "posts"\nscopes = ["all"]\nperiods = ["week"]\n'}
        )


def test_a_week_spans_month_and_year_ends() -> None:
    start = ordinal("2026-12-28")  # Monday of 2026-W53
    keys = {period_of("week", start + i).key for i in range(7)}
    assert keys == {"week:2026-W53"}
    months = {period_of("month", start + i).key for i in range(7)}
    assert months == {"month:2026-12", "month:2027-01"}
    assert (date.fromordinal(start) + timedelta(days=6)).isoformat() == "2027-01-03"


def window(scores: list[int], start: int, higher: int) -> Window:
    return Window(start + len(scores), start, [f"m{n}" for n in range(len(scores))], scores, higher)


@given(
    # from 1 to 6: mostly tied; from 1 to 60: often none tied (each way of counting)
    scores=st.lists(st.integers(1, 6) | st.integers(1, 60), min_size=1, max_size=30).map(
        lambda s: sorted(s, reverse=True)
    ),
    higher=st.integers(0, 40),
    tied=st.integers(0, 5),
)
def test_competition_ranks_count_the_members_strictly_higher(
    scores: list[int], higher: int, tied: int
) -> None:
    """A window of a board after `higher` members with a higher score and `tied` with the
    window's first: each rank is one more than the members strictly higher on the whole
    board."""
    board = [scores[0] + 1] * higher + [scores[0]] * tied + scores
    expected = [1 + sum(1 for s in board if s > score) for score in scores]
    assert window(scores, higher + tied, higher).ranks() == expected


def test_competition_ranks_share_a_tie_and_skip_after_it() -> None:
    assert window([9, 5, 5, 4, 4, 4, 1], 0, 0).ranks() == [1, 2, 2, 4, 4, 4, 7]
    # from position 10, the first row tied with two members before it
    assert window([5, 5, 4], 10, 8).ranks() == [9, 9, 13]
    # no two rows tied: the first row's rank, then positions
    assert window([5, 4, 1], 10, 8).ranks() == [9, 12, 13]
    assert window([5, 4, 1], 0, 0).ranks() == [1, 2, 3]
    assert window([], 3, 0).ranks() == []
