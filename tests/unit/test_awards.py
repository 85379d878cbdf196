"""Award rules: thresholds, tie-breaks and the explanation of each row, and the national
quota shared among provinces."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from points_service.domain.awards import Award, Candidate, load_awards, nominate, quota_shares
from points_service.domain.rules import RuleSetInvalid

ROOT = Path(__file__).resolve().parents[2]


def candidate(
    who: str, province: str = "640000", eligible: bool = True, **metrics: int
) -> Candidate:
    base = dict.fromkeys(
        ("points", "shares", "share_views", "posts", "active_days", "active_months"), 0
    )
    registered = datetime(2024, 1, int(metrics.pop("registered_day", 1)), tzinfo=UTC)
    return Candidate(who, who.upper(), province, registered, eligible, base | metrics)


def test_quota_is_proportional_with_at_least_one_each() -> None:
    shares = quota_shares(10, {"640000": 700, "650000": 200, "630000": 100})
    assert shares == {"640000": 6, "650000": 2, "630000": 2}
    assert sum(shares.values()) == 10
    assert quota_shares(2, {"a": 1, "b": 1, "c": 1}) == {"a": 1, "b": 1, "c": 1}  # floor of one
    assert quota_shares(0, {"a": 5}) == {}


def test_thresholds_tie_breaks_and_reasons() -> None:
    award = Award(
        id="outstanding", title="", title_zh="", rank_by="points",
        tie_breaks=["shares", "registered_at", "informant_id"],
        thresholds={"shares": 310, "active_months": 10},
    )  # fmt: skip
    rows = nominate(
        award,
        [
            candidate("a", points=900, shares=320, active_months=10, registered_day=3),
            candidate("b", points=900, shares=320, active_months=12, registered_day=1),
            candidate("c", points=950, shares=400, active_months=11),
            candidate("d", points=999, shares=309, active_months=12),  # too few shares
            candidate("e", points=999, shares=500, active_months=12, eligible=False),
        ],
    )
    assert [r.informant_id for r in rows] == ["c", "b", "a"]
    assert [r.placed_by for r in rows] == [None, None, "registered_at"]
    assert rows[0].thresholds_met == {"shares": 310, "active_months": 10}
    assert "shares 400 >= 310" in rows[0].reasons


def test_a_national_quota_takes_the_best_of_each_province() -> None:
    award = Award(id="o", title="", title_zh="", rank_by="points", national_quota=3)
    people = [candidate(f"n{k}", "640000", points=100 - k) for k in range(5)]
    people += [candidate(f"x{k}", "650000", points=50 - k) for k in range(5)]
    rows = nominate(award, people, {"640000": 200, "650000": 100})
    assert [r.informant_id for r in rows] == ["n0", "n1", "x0"]


def test_the_shipped_award_file_and_its_validation() -> None:
    awards = load_awards("awards.toml", (ROOT / "rules" / "awards.toml").read_bytes())
    assert set(awards) == {"top_ten", "outstanding"}
    assert awards["top_ten"].limit == 10
    assert awards["outstanding"].thresholds == {"shares": 310, "active_months": 10}
    with pytest.raises(RuleSetInvalid, match="award 'x': field `rank_by`"):
        load_awards(
            "bad.toml", b'[[awards]]\nid = "x"\ntitle = ""\ntitle_zh = ""\nrank_by = "karma"\n'
        )
