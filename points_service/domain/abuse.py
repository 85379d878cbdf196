"""Anti-abuse: what looks like a machine rather than a person, found in the events the
ledger received, with the thresholds of `rules/abuse.toml`.

Four kinds of flag, each naming one informant, a window of time (by when the service
received the events, which a sender cannot set) and its evidence:

- `share_view_velocity`: one share viewed more than `views` times within `seconds`
  (faster than people read); the sharer is flagged.
- `viewer_spread`: one viewer id viewing the shares of more than `sharers` informants
  within `hours`; every sharer it viewed for is flagged, with the viewer as evidence.
- `burst`: one informant sending more than `events` events within `seconds`.
- `banned_activity`: events received from an informant whose profile is banned.

A flag is evidence for an admin, not a verdict: the informant is left out of award
nominations until an admin clears the flag, and an admin can reverse the credits of the
flag's window (the events the flag is about) in one call. Imported history is never
scanned (it arrives at import speed).
"""

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any, Final, Literal

import msgspec

from points_service.domain.rules import decode_document

VELOCITY: Final = "share_view_velocity"
SPREAD: Final = "viewer_spread"
BURST: Final = "burst"
BANNED: Final = "banned_activity"
KINDS: Final = (VELOCITY, SPREAD, BURST, BANNED)
FlagStatus = Literal["open", "cleared", "reversed"]
# A flag that is not cleared keeps its informant out of the nominations.
BARRING: Final = ("open", "reversed")

Positive = Annotated[int, msgspec.Meta(ge=1)]


class Velocity(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    seconds: Positive = 60
    views: Positive = 30


class Spread(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    hours: Annotated[int, msgspec.Meta(ge=1, le=168)] = 24
    sharers: Positive = 50


class Burst(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    seconds: Positive = 10
    events: Positive = 20


class Banned(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    enabled: bool = True


class Thresholds(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """`rules/abuse.toml`; every section and field has a default."""

    scan_every_seconds: Annotated[int, msgspec.Meta(ge=5)] = 60
    share_view_velocity: Velocity = Velocity()
    viewer_spread: Spread = Spread()
    burst: Burst = Burst()
    banned: Banned = Banned()

    @property
    def lookback(self) -> timedelta:
        """How far before a scan's start its sliding windows must see."""
        longest = max(self.share_view_velocity.seconds, self.burst.seconds)
        return timedelta(seconds=longest)


def load_thresholds(name: str, data: bytes) -> Thresholds:
    return decode_document(name, data, Thresholds, what="threshold")


@dataclass(frozen=True, slots=True)
class Seen:
    """One received event, as the scan reads it."""

    event_id: str
    informant_id: str
    action: str
    received_at: datetime
    share_id: str | None = None
    viewer_id: str | None = None


@dataclass(frozen=True, slots=True)
class Finding:
    """One informant's suspicious window. `subject` narrows which of its events the flag
    is about (a share id, a viewer id; "" for all of them)."""

    informant_id: str
    kind: str
    subject: str
    start: datetime
    end: datetime
    evidence: Mapping[str, Any] = field(default_factory=dict)


SAMPLES = 20  # event ids a flag's evidence lists


@dataclass(slots=True)
class _Run:
    start: datetime
    last: Seen  # the run's latest event
    events: int  # every event of the key from start to last
    peak: int  # the most within one window
    samples: list[str]


def _sliding(
    events: Iterable[tuple[tuple[str, str], Seen]], seconds: int, limit: int
) -> dict[tuple[str, str], list[_Run]]:
    """Per key, the runs of time in which more than `limit` of its events fell within
    `seconds` of each other: from the first event of the first such window to the last
    event of the last, overlapping windows joined. Events come in time order."""
    width = timedelta(seconds=seconds)
    windows: dict[tuple[str, str], deque[Seen]] = {}
    runs: dict[tuple[str, str], list[_Run]] = {}
    for key, seen in events:
        window = windows.setdefault(key, deque())
        window.append(seen)
        while window[0].received_at <= seen.received_at - width:
            window.popleft()
        if len(window) <= limit:
            continue
        found = runs.setdefault(key, [])
        run = found[-1] if found else None
        if run is not None and window[0].received_at <= run.last.received_at:
            # Overlaps the run: it takes every event since the run's last one (all of
            # them are in this window, which still holds that one).
            ordered = list(window)
            newer = ordered[ordered.index(run.last) + 1 :]
            run.events += len(newer)
            run.samples += [e.event_id for e in newer][: SAMPLES - len(run.samples)]
            run.last, run.peak = seen, max(run.peak, len(window))
        else:
            ids = [e.event_id for e in window]
            found.append(_Run(window[0].received_at, seen, len(window), len(window), ids[:SAMPLES]))
    return runs


def _findings(
    kind: str,
    keyed: list[tuple[tuple[str, str], Seen]],
    seconds: int,
    limit: int,
    counted: str,
) -> list[Finding]:
    out = []
    for (informant, subject), runs in _sliding(keyed, seconds, limit).items():
        for run in runs:
            evidence: dict[str, Any] = {"share_id": subject} if subject else {}
            evidence |= {
                counted: run.events,
                "most_within_window": run.peak,
                "window_seconds": seconds,
                "threshold": limit,
                "sample_event_ids": run.samples,
            }
            out.append(Finding(informant, kind, subject, run.start, run.last.received_at, evidence))
    return out


def detect(events: Iterable[Seen], thresholds: Thresholds) -> list[Finding]:
    """Share-view velocity and bursts in `events` (in the order received)."""
    velocity, burst = thresholds.share_view_velocity, thresholds.burst
    views: list[tuple[tuple[str, str], Seen]] = []
    sent: list[tuple[tuple[str, str], Seen]] = []
    for e in events:
        sent.append(((e.informant_id, ""), e))
        if e.action == "share_view" and e.share_id is not None:
            views.append(((e.informant_id, e.share_id), e))
    return _findings(VELOCITY, views, velocity.seconds, velocity.views, "views") + _findings(
        BURST, sent, burst.seconds, burst.events, "events"
    )


@dataclass(frozen=True, slots=True)
class ViewerSharer:
    """What one viewer id viewed of one sharer's shares in the spread window."""

    viewer_id: str
    informant_id: str
    views: int
    first: datetime
    last: datetime


def detect_spread(rows: Iterable[ViewerSharer], thresholds: Thresholds) -> list[Finding]:
    """Every sharer of a viewer id that viewed for more than the threshold's sharers."""
    spread = thresholds.viewer_spread
    by_viewer: dict[str, list[ViewerSharer]] = {}
    for row in rows:
        by_viewer.setdefault(row.viewer_id, []).append(row)
    findings = []
    for viewer, sharers in by_viewer.items():
        if len(sharers) <= spread.sharers:
            continue
        for row in sharers:
            evidence = {
                "viewer_id": viewer,
                "sharers": len(sharers),
                "views_for_this_informant": row.views,
                "window_hours": spread.hours,
                "threshold": spread.sharers,
            }
            findings.append(
                Finding(row.informant_id, SPREAD, viewer, row.first, row.last, evidence)
            )
    return findings


@dataclass(frozen=True, slots=True)
class Flag:
    flag_id: int
    informant_id: str
    kind: str
    subject: str
    start: datetime
    end: datetime
    evidence: Mapping[str, Any]
    status: FlagStatus
    detected_at: datetime
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    note: str | None = None


def placement(finding: Finding, known: Iterable[Flag]) -> tuple[str, Flag | None, Finding]:
    """What saving `finding` does, given the flags already kept for the same informant,
    kind and subject: ("skip", flag, _) when a resolved flag already covers it (a rescan
    does not reopen what an admin decided), ("extend", flag, finding) to widen an open
    flag it overlaps, ("new", None, finding) otherwise, starting after any resolved
    flag it overlaps."""
    for flag in sorted(known, key=lambda f: f.end, reverse=True):
        if flag.end < finding.start or flag.start > finding.end:
            continue
        if flag.status == "open":
            return "extend", flag, finding
        if finding.end <= flag.end:
            return "skip", flag, finding
        later = Finding(
            finding.informant_id,
            finding.kind,
            finding.subject,
            flag.end + timedelta(microseconds=1),
            finding.end,
            finding.evidence,
        )
        return "new", None, later
    return "new", None, finding
