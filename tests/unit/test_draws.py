"""The lottery's domain: draw files validated with every problem named (file, draw,
field), the outcome function, and the replay that finds a changed outcome."""

import hashlib
import hmac
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from points_service.adapters.rule_files import load_draw_file
from points_service.domain.draws import (
    BUDGET_EXHAUSTED,
    SOLD_OUT,
    Draw,
    RecordedDraw,
    Stock,
    build_draw_set,
    decode_definition,
    definition_bytes,
    pick_of,
    prize_at,
    replay,
    resolve,
)
from points_service.domain.rules import RuleSetInvalid

RULES_DIR = Path(__file__).resolve().parents[2] / "rules"
GOOD = b"""
[[draws]]
id = "d"
cost = 20
daily_limit = 3
budget = 100
starts = 2026-12-01T00:00:00+08:00
ends = 2027-01-01T00:00:00+08:00
[[draws.prizes]]
id = "p50"
kind = "points"
points = 50
quantity = 1
weight = 1
[[draws.prizes]]
id = "book"
kind = "item"
value = 40
quantity = 2
weight = 1
[[draws.prizes]]
id = "none"
kind = "none"
weight = 2
"""


def draw() -> Draw:
    return build_draw_set("draws.toml", GOOD).draws["d"]


def problems(data: bytes) -> list[str]:
    with pytest.raises(RuleSetInvalid) as caught:
        build_draw_set("draws.toml", data)
    return [str(p) for p in caught.value.problems]


def test_the_shipped_draw_file_loads() -> None:
    draws = load_draw_file(RULES_DIR)
    shipped = draws.draws["winter-2026"]
    assert shipped.cost == 20 and shipped.no_prize.id == "no-prize"
    assert {p.kind for p in shipped.prizes} == {"points", "item", "none"}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ((b"cost = 20", b"cost = 0"), "draws.toml: draw 'd': field `cost`"),
        ((b'kind = "none"', b'kind = "item"'), "draws.toml: draw 'd': field `prizes`"),
        ((b"points = 50\n", b""), "draws.toml: draw 'd': field `prizes[0].points`"),
        ((b"value = 40\n", b""), "draws.toml: draw 'd': field `prizes[1].value`"),
        ((b"quantity = 1\n", b""), "draws.toml: draw 'd': field `prizes[0].quantity`"),
        ((b"ends = 2027", b"ends = 2020"), "draws.toml: draw 'd': field `ends`"),
        (
            (b"budget = 100", b"budget = 100\ncolour = 1"),
            "draws.toml: draw 'd': Object contains unknown field `colour`",
        ),
    ],
)
def test_every_problem_names_file_draw_and_field(
    change: tuple[bytes, bytes], expected: str
) -> None:
    found = problems(GOOD.replace(*change, 1))
    assert any(p.startswith(expected) for p in found), found


def test_the_outcome_is_hmac_of_the_draw_id_over_the_weights() -> None:
    seed = bytes(range(32))
    d = draw()
    mac = hmac.new(seed, b"abc", hashlib.sha256).digest()
    assert pick_of(seed, "abc", 4) == int.from_bytes(mac, "big") % 4
    assert [prize_at(d, k).id for k in range(4)] == ["p50", "book", "none", "none"]
    assert decode_definition(definition_bytes(d)) == d


def test_stock_then_budget_run_out() -> None:
    d = draw()
    stock = Stock()
    first = resolve(d, 0, stock)  # p50: 50 of the 100
    assert not isinstance(first, str) and (first.prize.id, first.seq) == ("p50", 1)
    again = resolve(d, 0, stock)  # p50 is gone: no prize instead
    assert not isinstance(again, str) and (again.prize.id, again.fallback) == ("none", True)
    book = resolve(d, 1, stock)  # 40 more: 90 spent, 10 left, a book no longer fits
    assert not isinstance(book, str) and book.prize.id == "book"
    assert resolve(d, 1, stock) == BUDGET_EXHAUSTED
    assert resolve(d, 0, Stock(used={"p50": 1, "book": 2}, spent=0)) == SOLD_OUT


@given(st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=30, unique=True))
def test_replay_agrees_with_resolve_and_finds_a_changed_outcome(ids: list[str]) -> None:
    d, seed = draw(), b"s" * 32
    stock = Stock()
    records = []
    for draw_id in ids:
        outcome = resolve(d, pick_of(seed, draw_id, d.total_weight), stock)
        if isinstance(outcome, str):
            break
        records.append(
            RecordedDraw(
                outcome.seq, draw_id, outcome.pick, outcome.prize.id,
                outcome.prize.points or 0, outcome.fallback,
            )
        )  # fmt: skip
    assert replay(d, seed, records) == []
    changed = records[0]
    other = "book" if changed.prize != "book" else "none"
    tampered = [RecordedDraw(1, changed.draw_id, changed.pick, other, 0, False), *records[1:]]
    assert replay(d, seed, tampered)
    if len(records) > 1:
        assert any("missing" in p for p in replay(d, seed, records[1:]))
