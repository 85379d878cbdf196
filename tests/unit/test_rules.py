"""Rule files are validated before use; every problem names the file, rule and field."""

import pytest

from points_service.domain.rules import RuleSetInvalid, build_rule_set

GOOD = b"""
[[rules]]
id = "browse"
action = "browse"
points = 1
distinct = { by = ["content_id"] }
daily_points_cap = 10
"""


def problems(**documents: bytes) -> list[str]:
    with pytest.raises(RuleSetInvalid) as caught:
        build_rule_set({f"{k}.toml": v for k, v in documents.items()})
    return [str(p) for p in caught.value.problems]


def test_a_good_file_builds_with_a_content_hash_version() -> None:
    one = build_rule_set({"a.toml": GOOD})
    two = build_rule_set({"a.toml": GOOD + b"\n# a comment\n"})
    assert one.version != two.version and len(one.version) == 12
    assert one.by_action["browse"][0].daily_points_cap == 10


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD.replace(b"points = 1", b"points = -1"), "a.toml: rule 'browse': field `points`"),
        (GOOD.replace(b"points = 1", b'points = "one"'), "a.toml: rule 'browse': field `points`"),
        (GOOD.replace(b"points = 1", b"points = 1\nbonus = 2"), "unknown field `bonus`"),
        (
            GOOD.replace(b'action = "browse"', b'action = "dance"'),
            "a.toml: rule 'browse': field `action`",
        ),
        (GOOD.replace(b'by = ["content_id"]', b'by = ["viewer_id"]'), "field `distinct.by`"),
        (b"[[rules]\nid=", "a.toml: not TOML"),
    ],
)
def test_bad_files_name_the_file_rule_and_field(text: bytes, expected: str) -> None:
    found = problems(a=text)
    assert any(expected in p for p in found), found


def test_conflicting_definitions_across_files_are_refused() -> None:
    counted = GOOD + b'counts = ["shares"]\n'
    found = problems(a=counted, b=counted.replace(b'id = "browse"', b'id = "browse2"'))
    assert any("b.toml: rule 'browse2': field `counts`" in p for p in found), found
    found = problems(a=GOOD, b=GOOD)
    assert any("rule 'browse': field `id`: also defined in a.toml" in p for p in found), found


def test_featured_needs_a_paying_action_and_a_window() -> None:
    featured = b"""
[[featured]]
name = "f"
actions = ["share"]
factor = 2
content_ids = ["c"]
starts = 2026-02-01T00:00:00+08:00
ends = 2026-01-01T00:00:00+08:00
"""
    found = problems(a=GOOD + featured)
    assert any("rule 'f': field `ends`" in p for p in found), found
    assert any("rule 'f': field `actions`: no rule pays for `share`" in p for p in found), found


def test_no_files_is_not_a_rule_set() -> None:
    with pytest.raises(RuleSetInvalid, match="no rule files"):
        build_rule_set({})
