"""From use-case results to wire shapes."""

from points_service.domain.ledger import LedgerEntry
from points_service.http.schemas import (
    ActionTodayOut,
    EventResult,
    LedgerEntryOut,
    LineOut,
    PointsOut,
)
from points_service.services.account import PointsView
from points_service.services.credit import Credited


def event_result(c: Credited) -> EventResult:
    return EventResult(
        event_id=c.event_id,
        informant_id=c.informant_id,
        action=c.action,
        points=c.points,
        balance=c.balance,
        lines=[LineOut(x.rule, x.points, x.reason, x.requested) for x in c.lines],
        replayed=c.replayed,
        dry_run=c.dry_run,
        late=c.late,
        day=c.day,
        streak=c.streak,
        counters=c.counters,
        rule_version=c.rule_version,
    )


def points_out(v: PointsView) -> PointsOut:
    return PointsOut(
        informant_id=v.informant_id,
        balance=v.balance,
        earned=v.earned,
        day=v.day,
        today={a: ActionTodayOut(t.count, t.points) for a, t in v.today.items()},
        streak=v.streak,
        last_sign_in=v.last_sign_in,
    )


def ledger_entry_out(e: LedgerEntry) -> LedgerEntryOut:
    return LedgerEntryOut(
        id=e.id,
        kind=e.kind,
        ref_id=e.ref_id,
        points=e.points,
        day=e.day,
        created_at=e.created_at,
        rule_version=e.rule_version,
        detail=e.detail,
    )
