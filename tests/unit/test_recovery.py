"""State rebuilt from the ledger's events equals the state the engine left behind."""

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from points_service.domain.engine import InformantState, decide, plan_event
from points_service.domain.events import Event
from points_service.domain.recovery import (
    PastEvent,
    Totals,
    first_kept_day,
    long_memory_actions,
    state_from_history,
)
from tests.unit.test_engine import GRACE, RULES, SHANGHAI, START, action_events

steps = st.lists(
    st.tuples(
        action_events(),
        st.integers(min_value=0, max_value=12 * 24 * 60),  # minutes after START
        st.integers(min_value=0, max_value=5 * 24 * 60),  # arrival delay in minutes
        st.integers(min_value=0, max_value=3),  # resend an earlier event id
    ),
    min_size=1,
    max_size=150,
)


def _kept(state: InformantState, first_day: int) -> dict[int, dict[str, int]]:
    return {day: fields for day, fields in state.days.items() if day >= first_day and fields}


@given(steps, st.integers(min_value=0, max_value=12))
@settings(max_examples=200, deadline=None)
def test_rebuilt_state_equals_the_engines(
    sequence: list[tuple[tuple[str, dict[str, str]], int, int, int]], kept_from: int
) -> None:
    model = InformantState()
    ledger: list[PastEvent] = []  # what the ledger keeps: each event id's first decision
    sent: list[Event] = []
    for n, ((action, fields), minutes, delay, resend) in enumerate(sequence):
        at = START + timedelta(minutes=minutes)
        event = (
            sent[-resend]
            if resend and len(sent) >= resend
            else Event(
                event_id=f"e{n}",
                informant_id="u1",
                action=action,  # type: ignore[arg-type]
                occurred_at=at,
                **fields,
            )
        )
        sent.append(event)
        plan = plan_event(
            event, RULES, SHANGHAI, event.occurred_at + timedelta(minutes=delay), GRACE
        )
        decision, replayed = decide(plan, model)
        if not replayed:
            ledger.append(PastEvent(event, decision))

    first_day = SHANGHAI.day_number(START) + kept_from
    # The ledger is read in no particular order.
    rebuilt = state_from_history(
        reversed(ledger), Totals(model.balance, model.earned), RULES, first_day
    )
    assert (rebuilt.balance, rebuilt.earned) == (model.balance, model.earned)
    assert (rebuilt.streak, rebuilt.streak_day) == (model.streak, model.streak_day)
    assert rebuilt.ever == model.ever
    assert _kept(rebuilt, first_day) == _kept(model, first_day)
    # And the events that can still matter from before the kept days are only those of
    # the actions with a long memory (the adapter reads no others).
    wanted = long_memory_actions(RULES)
    partial = [p for p in ledger if p.decision.day >= first_day or p.event.action in wanted]
    again = state_from_history(partial, Totals(model.balance, model.earned), RULES, first_day)
    assert again == rebuilt


def test_first_kept_day_covers_the_day_key_lifetime() -> None:
    assert first_kept_day(100, timedelta(hours=120)) == 95
    assert first_kept_day(100, timedelta(hours=121)) == 94
