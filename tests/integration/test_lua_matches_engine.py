"""apply.lua and domain.engine.decide are the same semantics: random event sequences
applied to a real Redis give exactly the decisions of the reference model."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from points_service.adapters.redis_client import connect
from points_service.adapters.redis_state import RedisState
from points_service.adapters.script_pipeline import ScriptPipeline
from points_service.domain.engine import InformantState, decide, plan_event
from points_service.domain.events import Event
from tests.conftest import REDIS_URL
from tests.unit.test_engine import GRACE, RULES, SHANGHAI, action_events

START = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)

steps = st.lists(
    st.tuples(
        action_events(),
        st.integers(min_value=0, max_value=4 * 24 * 60),  # minutes after START
        st.integers(min_value=0, max_value=5 * 24 * 60),  # arrival delay in minutes
        st.booleans(),  # dry run
        st.integers(min_value=0, max_value=3),  # resend an earlier event id
    ),
    min_size=1,
    max_size=60,
)


@pytest.fixture(params=["one node", "cluster"])
def redis_target(request: pytest.FixtureRequest) -> tuple[str, bool]:
    if request.param == "cluster":
        return request.getfixturevalue("redis_cluster_url"), True
    return REDIS_URL, False


@given(steps)
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
async def test_lua_equals_reference(
    redis_prefix_root: str,
    redis_target: tuple[str, bool],
    sequence: list[tuple[tuple[str, dict[str, str]], int, int, bool, int]],
) -> None:
    url, cluster = redis_target
    client = connect(url, cluster=cluster)
    store = RedisState(
        client,
        prefix=f"{redis_prefix_root}:eq{uuid.uuid4().hex[:8]}",
        day_ttl_seconds=3600,
        idem_ttl_seconds=3600,
        cluster=cluster,
        scripts=ScriptPipeline(client, cluster=cluster),
    )
    model = InformantState()
    sent: list[Event] = []
    try:
        batch = []
        for n, ((action, fields), minutes, delay, dry, resend) in enumerate(sequence):
            at = START + timedelta(minutes=minutes)
            event = (
                sent[-resend]
                if resend and len(sent) >= resend
                else Event(
                    event_id=f"e{n}",
                    informant_id="u1",
                    action=action,  # type: ignore[arg-type]
                    occurred_at=at,
                    dry_run=dry,
                    **fields,
                )
            )
            sent.append(event)
            plan = plan_event(event, RULES, SHANGHAI, at + timedelta(minutes=delay), GRACE)
            expected, expected_replay = decide(plan, model)
            # Alternate one call per event with a whole batch in one call.
            if n % 2:
                batch.append((plan, expected, expected_replay))
                continue
            for p, exp, rep in batch:
                [got] = await store.apply("u1", [p])
                assert (got.decision, got.replayed) == (exp, rep)
            batch = []
            [got] = await store.apply("u1", [plan])
            assert (got.decision, got.replayed) == (expected, expected_replay)
        if batch:
            got_all = await store.apply("u1", [p for p, _, _ in batch])
            assert [(g.decision, g.replayed) for g in got_all] == [(e, r) for _, e, r in batch]
        snap = await store.snapshot("u1", 0)
        assert (snap.balance, snap.earned, snap.streak, snap.streak_day) == (
            model.balance,
            model.earned,
            model.streak,
            model.streak_day,
        )
    finally:
        await client.aclose()
