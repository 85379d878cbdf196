"""Levels as a pure function of experience (domain/levels.py), and the file's checks."""

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from points_service.adapters.rule_files import load_level_file
from points_service.domain.levels import ONE_LEVEL, Level, Levels, load_levels
from points_service.domain.rules import RuleSetInvalid

ROOT = Path(__file__).resolve().parents[2]


@st.composite
def level_sets(draw: st.DrawFn) -> Levels:
    steps = draw(st.lists(st.integers(1, 500), min_size=0, max_size=8))
    ats = [0]
    for step in steps:
        ats.append(ats[-1] + step)
    return Levels(
        tuple(
            Level(level=n + 1, at=a, title=f"L{n + 1}", title_zh=f"级{n + 1}")
            for n, a in enumerate(ats)
        )
    )


@given(level_sets(), st.integers(0, 5000), st.integers(0, 5000))
def test_a_level_is_the_highest_reached_and_crossing_lists_what_lies_between(
    levels: Levels, a: int, b: int
) -> None:
    low, high = sorted((a, b))
    assert levels.level_of(low).level <= levels.level_of(high).level  # never down as it grows
    at = levels.level_of(high)
    assert at.at <= high and all(x.at > high for x in levels.levels if x.level > at.level)
    crossed = levels.crossed(low, high)
    assert [x.level for x in crossed] == [x.level for x in levels.levels if low < x.at <= high]
    assert levels.crossed(high, low) == ()  # going down reaches nothing
    # crossing in two steps reaches what one step does
    middle = (low + high) // 2
    assert levels.crossed(low, middle) + levels.crossed(middle, high) == crossed


@given(level_sets(), st.integers(0, 5000))
def test_the_standing_says_how_far_the_next_level_is(levels: Levels, experience: int) -> None:
    s = levels.standing(experience)
    assert 0.0 <= s.progress <= 1.0
    if s.next is None:
        assert s.level == levels.levels[-1] and s.to_next is None and s.progress == 1.0
    else:
        assert s.next.level == s.level.level + 1
        assert s.to_next == s.next.at - experience > 0


def test_the_shipped_file_and_no_file() -> None:
    shipped = load_level_file(ROOT / "rules")
    assert [x.level for x in shipped.levels] == list(range(1, len(shipped.levels) + 1))
    assert shipped.levels[0].at == 0 and all(x.title and x.title_zh for x in shipped.levels)
    assert load_level_file(ROOT / "tests") is ONE_LEVEL  # no levels.toml there


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "[[levels]]\nlevel = 1\nat = 5\ntitle = 'a'\ntitle_zh = '甲'\n",
            "level '1': field `at`: the first level is at 0",
        ),
        ("[[levels]]\nlevel = 1\nat = 0\ntitle = 'a'\ntitle_zh = '甲'\ncolour = 'red'\n", "colour"),
        ("[[levels]]\nlevel = 1\nat = -1\ntitle = 'a'\ntitle_zh = '甲'\n", "field `at`"),
        ("[[levels]]\nlevel = 1\nat = 0\ntitle = ''\ntitle_zh = '甲'\n", "field `title`"),
        ("levels = []\n", "field `levels`"),
        ("[[levels]]\nlevel = 2\nat = 0\ntitle = 'a'\ntitle_zh = '甲'\n", "expected 1"),
    ],
)
def test_a_bad_file_names_the_level_and_the_field(text: str, problem: str) -> None:
    with pytest.raises(RuleSetInvalid) as caught:
        load_levels("levels.toml", text.encode())
    assert problem in str(caught.value)
    assert str(caught.value).startswith("levels.toml")
