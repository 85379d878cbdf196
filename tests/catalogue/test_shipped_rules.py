"""Every shipped rule file loads, and the defaults are exactly PRODUCT.md's table."""

import json
from pathlib import Path

import pytest

from points_service.adapters.rule_files import load_rule_dir
from points_service.cli import main

RULES_DIR = Path(__file__).resolve().parents[2] / "rules"


def test_shipped_rules_are_the_product_defaults() -> None:
    rules = load_rule_dir(RULES_DIR)
    table = {
        r.id: (r.action, r.points, r.daily_points_cap, r.distinct.by if r.distinct else None)
        for r in rules.rules
    }
    assert table == {
        "login": ("login", 1, None, []),
        "sign_in": ("sign_in", 5, None, []),
        "browse": ("browse", 1, 10, ["content_id"]),
        "share": ("share", 2, 20, ["content_id"]),
        "share_view": ("share_view", 1, 30, ["share_id", "viewer_id"]),
        "post": ("post", 3, 9, ["content_id"]),
        "like": ("like", 1, 5, ["content_id"]),
    }
    by_id = {r.id: r for r in rules.rules}
    streak = by_id["sign_in"].streak
    assert streak is not None
    assert [(m.days, m.bonus) for m in streak.milestones] == [
        (7, 10),
        (30, 30),
        (100, 100),
        (365, 365),
    ]
    assert by_id["sign_in"].today_only
    assert (
        by_id["share_view"].distinct is not None and by_id["share_view"].distinct.within == "ever"
    )
    assert by_id["share_view"].exclude_self is not None
    assert by_id["share_view"].exclude_self.reason == "self_view"
    assert [f.factor for f in rules.featured] == [2]
    assert {c for r in rules.rules for c in r.counts} == {"shares", "share_views", "posts"}


def test_rules_check_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check", str(RULES_DIR)]) == 0
    assert "ok: 7 rules" in capsys.readouterr().out
    (tmp_path / "bad.toml").write_text('[[rules]]\nid = "x"\naction = "login"\npoints = -3\n')
    assert main(["rules", "check", str(tmp_path)]) == 1
    assert "bad.toml: rule 'x': field `points`" in capsys.readouterr().err


def test_rules_simulate_judges_a_file_without_recording(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = [
        {"event_id": f"e{n}", "informant_id": "u1", "action": "post", "content_id": f"p{n}",
         "occurred_at": f"2026-11-28T0{n}:00:00+08:00"}
        for n in range(4)
    ] + [{"event_id": "e9", "informant_id": "u1", "action": "sign_in",
          "occurred_at": "2026-11-28T09:00:00+08:00"}]  # fmt: skip
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    assert main(["rules", "simulate", str(path), "--rules", str(RULES_DIR)]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [o["points"] for o in out] == [3, 3, 3, 0, 5]
    assert out[-1]["balance"] == 14


def test_leaderboards_check_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["leaderboards", "check", str(RULES_DIR.parent / "leaderboards")]) == 0
    assert "ok: 4 metrics, 100 scope x period combinations" in capsys.readouterr().out
    (tmp_path / "bad.toml").write_text('[[boards]]\nmetric = "karma"\nscopes = []\nperiods = []\n')
    assert main(["leaderboards", "check", str(tmp_path)]) == 1
    assert "bad.toml: board 'karma': field `metric`" in capsys.readouterr().err
