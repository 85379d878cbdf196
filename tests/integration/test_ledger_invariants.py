"""Stateful invariants of the credit path on real Redis and real SQLite, through the
use cases: whatever mix of events, retries, redemptions and reversals,
- the balances table equals the sum of the ledger entries, informant by informant;
- Redis's balance equals the ledger's;
- no rule ever pays more than its daily cap.
"""

import asyncio
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from redis.asyncio import Redis
from sqlalchemy import func, select

from points_service.adapters.redis_state import RedisState
from points_service.adapters.sql.engine import database_url
from points_service.adapters.sql.ledger import SqlLedger, open_ledger
from points_service.adapters.sql.tables import balances, events, ledger_entries
from points_service.domain.calendar import Calendar
from points_service.domain.events import Event
from points_service.services.account import Accounts
from points_service.services.credit import Credits
from points_service.services.errors import Conflict
from points_service.services.rulebook import RuleBook
from tests.conftest import REDIS_URL, RUN
from tests.unit.test_engine import RULES

WHO = ["a", "b", "c"]
NOW = datetime(2026, 11, 28, 4, 0, tzinfo=UTC)  # noon in Shanghai
CAPS = {r.id: r.daily_points_cap for r in RULES.rules if r.daily_points_cap is not None}


class CreditPath(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tmp = tempfile.TemporaryDirectory()
        self.redis = Redis.from_url(REDIS_URL)
        self.prefix = f"pstest{RUN}:sm{uuid.uuid4().hex[:8]}"
        self.state = RedisState(
            self.redis,
            prefix=self.prefix,
            day_ttl_seconds=3600,
            idem_ttl_seconds=3600,
        )
        self.ledger: SqlLedger = self.run(open_ledger(database_url(None, Path(self.tmp.name))))
        clock = lambda: NOW  # noqa: E731 - a fixed programme time keeps every event on one day
        calendar = Calendar.named("Asia/Shanghai")
        book = RuleBook(lambda: RULES)
        self.credits = Credits(self.state, self.ledger, book, calendar, timedelta(hours=72), clock)
        self.accounts = Accounts(self.state, self.ledger, calendar, clock, book)
        self.sent: list[Event] = []

    def run(self, work):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(work)

    @rule(
        who=st.sampled_from(WHO),
        action=st.sampled_from(["browse", "share", "post", "like", "login", "share_view"]),
        item=st.integers(0, 12),
        minutes=st.integers(-600, 0),
    )
    def send(self, who: str, action: str, item: int, minutes: int) -> None:
        fields: dict[str, str] = {}
        if action == "share_view":
            fields = {"share_id": f"s{item % 3}", "viewer_id": f"v{item}"}
        elif action != "login":
            fields = {"content_id": f"c{item}"}
        event = Event(
            event_id=uuid.uuid4().hex,
            informant_id=who,
            action=action,  # type: ignore[arg-type]
            occurred_at=NOW + timedelta(minutes=minutes),
            **fields,  # type: ignore[arg-type]
        )
        self.run(self.credits.record(event))
        self.sent.append(event)

    @precondition(lambda self: self.sent)
    @rule(pick=st.integers(0, 10_000))
    def retry(self, pick: int) -> None:
        event = self.sent[pick % len(self.sent)]
        assert self.run(self.credits.record(event)).replayed

    @rule(who=st.sampled_from(WHO), points=st.integers(1, 15))
    def redeem(self, who: str, points: int) -> None:
        refused = None
        try:
            self.run(self.accounts.redeem(who, uuid.uuid4().hex, points, "prize"))
        except Conflict as exc:
            refused = exc.code
        assert refused in {None, "insufficient_balance"}

    @precondition(lambda self: self.sent)
    @rule(pick=st.integers(0, 10_000))
    def reverse(self, pick: int) -> None:
        self.run(self.accounts.reverse(self.sent[pick % len(self.sent)].event_id, "test"))

    async def _sql(self) -> tuple[dict[str, int], dict[str, int]]:
        async with self.ledger.engine.connect() as conn:
            entries = {
                r[0]: int(r[1])
                for r in await conn.execute(
                    select(
                        ledger_entries.c.informant_id, func.sum(ledger_entries.c.points)
                    ).group_by(ledger_entries.c.informant_id)
                )
            }
            held = {
                r[0]: int(r[1])
                for r in await conn.execute(select(balances.c.informant_id, balances.c.balance))
            }
            for rule_id, cap in CAPS.items():
                rows = await conn.execute(
                    select(events.c.informant_id, func.sum(events.c.points))
                    .where(events.c.action == rule_id)
                    .group_by(events.c.informant_id, events.c.day)
                )
                for who, total in rows:
                    assert int(total) <= cap, (who, rule_id, total, cap)
        return entries, held

    @invariant()
    def ledger_and_redis_agree(self) -> None:
        entries, held = self.run(self._sql())
        assert {k: v for k, v in entries.items() if v} == {k: v for k, v in held.items() if v}
        for who in WHO:
            assert self.run(self.state.balance(who)) == entries.get(who, 0)

    def teardown(self) -> None:
        # The keys stay until the session's end, which unlinks every key of this run's
        # prefix: a SCAN here per example read the whole shared Redis each time (two
        # minutes of the suite once the other tests had filled it).
        self.run(self.ledger.stop())
        self.run(self.state.close())
        self.run(self.redis.aclose())
        self.loop.close()
        self.tmp.cleanup()


CreditPath.TestCase.settings = settings(max_examples=25, stateful_step_count=30, deadline=None)
TestCreditPath = CreditPath.TestCase
