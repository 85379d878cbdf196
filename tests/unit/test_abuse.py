"""The anti-abuse detectors against a brute-force reading of the same events, and the
rules for keeping flags (a rescan never reopens what an admin decided)."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from points_service.domain.abuse import (
    BURST,
    VELOCITY,
    Finding,
    Flag,
    Seen,
    Thresholds,
    ViewerSharer,
    detect,
    detect_spread,
    load_thresholds,
    placement,
)
from points_service.domain.rules import RuleSetInvalid

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
TIGHT = load_thresholds(
    "abuse.toml",
    b"[burst]\nseconds = 10\nevents = 4\n[share_view_velocity]\nseconds = 30\nviews = 3\n",
)

arrivals = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 120), st.sampled_from(["s1", "s2"])),
    max_size=60,
)


def seen(events: list[tuple[str, int, str]]) -> list[Seen]:
    ordered = sorted(events, key=lambda e: e[1])
    return [
        Seen(f"e{n}", who, "share_view", T0 + timedelta(seconds=at), share, f"v{n}")
        for n, (who, at, share) in enumerate(ordered)
    ]


def over(times: list[datetime], seconds: int, limit: int) -> bool:
    """Some window of `seconds` ending at an event holds more than `limit` events."""
    width = timedelta(seconds=seconds)
    return any(sum(1 for u in times if t - width < u <= t) > limit for t in times)


# A run that dips below the threshold and comes back within its window: every event of
# the dip belongs to the run, and is counted.
@example([("a", t, "s1") for t in (0, 0, 0, 0, 0, 9, 10, 10, 10, 10)])
@given(arrivals)
def test_bursts_and_velocity_are_flagged_exactly_when_a_window_overflows(
    events: list[tuple[str, int, str]],
) -> None:
    stream = seen(events)
    findings = detect(stream, TIGHT)
    for who in "abc":
        mine = [e for e in stream if e.informant_id == who]
        bursts = [f for f in findings if f.kind == BURST and f.informant_id == who]
        assert bool(bursts) == over([e.received_at for e in mine], 10, 4)
        for share in ("s1", "s2"):
            views = [e.received_at for e in mine if e.share_id == share]
            flagged = [f for f in findings if f.kind == VELOCITY and f.subject == share]
            assert bool([f for f in flagged if f.informant_id == who]) == over(views, 30, 3)
    for f in findings:
        assert f.start <= f.end
        assert f.evidence["most_within_window"] > f.evidence["threshold"]
        # The count is every event of the flag's key within its window, no more or less.
        inside = [
            e
            for e in stream
            if e.informant_id == f.informant_id
            and f.start <= e.received_at <= f.end
            and (f.kind == BURST or e.share_id == f.subject)
        ]
        assert f.evidence["events" if f.kind == BURST else "views"] == len(inside)
    # Runs of one informant and kind never overlap: overlapping windows were joined.
    for f in findings:
        for g in findings:
            if f is not g and (f.informant_id, f.kind, f.subject) == (
                g.informant_id,
                g.kind,
                g.subject,
            ):
                assert f.end < g.start or g.end < f.start


def test_a_viewer_over_the_spread_flags_every_sharer_it_viewed_for() -> None:
    rows = [ViewerSharer("v1", f"u{n}", 2, T0, T0) for n in range(51)]
    rows += [ViewerSharer("v2", f"u{n}", 1, T0, T0) for n in range(50)]  # at the limit
    findings = detect_spread(rows, Thresholds())
    assert {f.informant_id for f in findings} == {f"u{n}" for n in range(51)}
    assert {f.subject for f in findings} == {"v1"}
    assert findings[0].evidence["sharers"] == 51


def flag(status: str, start: int, end: int) -> Flag:
    return Flag(
        1,
        "u",
        BURST,
        "",
        T0 + timedelta(seconds=start),
        T0 + timedelta(seconds=end),
        {},
        status,  # type: ignore[arg-type]
        T0,
    )


def finding(start: int, end: int) -> Finding:
    return Finding("u", BURST, "", T0 + timedelta(seconds=start), T0 + timedelta(seconds=end))


def test_keeping_flags() -> None:
    assert placement(finding(0, 10), [])[0] == "new"
    assert placement(finding(5, 20), [flag("open", 0, 10)])[0] == "extend"
    assert placement(finding(2, 8), [flag("cleared", 0, 10)])[0] == "skip"
    assert placement(finding(2, 8), [flag("reversed", 0, 10)])[0] == "skip"
    what, _, kept = placement(finding(5, 20), [flag("cleared", 0, 10)])
    assert what == "new" and kept.start > T0 + timedelta(seconds=10)
    assert placement(finding(30, 40), [flag("cleared", 0, 10)])[0] == "new"


def test_a_bad_threshold_file_names_the_field() -> None:
    with pytest.raises(RuleSetInvalid, match="burst") as caught:
        load_thresholds("abuse.toml", b"[burst]\nevents = 0\n")
    assert "abuse.toml" in str(caught.value)
    with pytest.raises(RuleSetInvalid, match="unknown"):
        load_thresholds("abuse.toml", b"[burst]\nevent = 3\n")
