"""API v1 end to end through a real HTTP client, on SQLite and on PostgreSQL."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from points_service.settings import Settings
from tests.conftest import redis_client, unique

Client = AsyncTestClient  # type: ignore[type-arg]


@pytest.fixture
def settings(settings_with_cluster: Settings) -> Settings:
    """This suite also runs on a Redis Cluster."""
    return settings_with_cluster


def now() -> str:
    return datetime.now(UTC).isoformat()


def body(informant: str, action: str, event_id: str | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": event_id or unique("e"),
        "informant_id": informant,
        "action": action,
        "occurred_at": fields.pop("occurred_at", now()),
        **fields,
    }


async def test_credit_replay_and_conflict(client: Client) -> None:
    who = unique("u")
    event = body(who, "browse", content_id="c1")
    first = await client.post("/v1/events", json=event)
    assert first.status_code == 200, first.text
    answer = first.json()
    assert (answer["points"], answer["balance"], answer["replayed"]) == (1, 1, False)
    assert answer["lines"] == [
        {"rule": "browse", "points": 1, "reason": "credited", "requested": 1}
    ]

    again = await client.post("/v1/events", json=event)
    assert again.status_code == 200
    assert again.json() == {**answer, "replayed": True}

    changed = await client.post("/v1/events", json={**event, "content_id": "c2"})
    assert changed.status_code == 409
    assert changed.json()["field"] == "event_id"

    points = (await client.get(f"/v1/informants/{who}/points")).json()
    assert (points["balance"], points["earned"], points["today"]["browse"]) == (
        1,
        1,
        {"count": 1, "points": 1},
    )
    ledger = (await client.get(f"/v1/informants/{who}/ledger")).json()
    assert [(e["kind"], e["ref_id"], e["points"]) for e in ledger["entries"]] == [
        ("credit", event["event_id"], 1)
    ]


async def test_bad_input_is_a_4xx_naming_the_field(client: Client) -> None:
    who = unique("u")
    cases = [
        (
            {**body(who, "browse", content_id="c"), "occurred_at": "2026-11-28T10:00:00"},
            "occurred_at",
        ),
        (body(who, "browse"), "content_id"),
        (body(who, "share_view", share_id="s"), "viewer_id"),
        (body(who, "dance"), "action"),
        ({**body(who, "login"), "colour": "red"}, "colour"),
        (body("bad{id}", "login"), "informant_id"),
        ({**body(who, "login"), "event_id": ""}, "event_id"),
        (
            body(who, "login", occurred_at=(datetime.now(UTC) + timedelta(minutes=6)).isoformat()),
            "occurred_at",
        ),
    ]
    for payload, field in cases:
        r = await client.post("/v1/events", json=payload)
        assert r.status_code == 422, (payload, r.text)
        assert r.json()["field"] == field, r.text
    missing = {k: v for k, v in body(who, "login").items() if k != "action"}
    r = await client.post("/v1/events", json=missing)
    assert (r.status_code, r.json()["field"]) == (422, "action")
    r = await client.post(
        "/v1/events", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    huge = {**body(who, "login"), "attributes": {"note": "x" * 70_000}}
    r = await client.post("/v1/events", json=huge)
    assert (r.status_code, r.json()["code"], r.json()["field"]) == (413, "too_large", "body")
    r = await client.get("/v1/events")
    assert (r.status_code, r.headers["allow"]) == (405, "POST")
    r = await client.get(f"/v1/informants/{who}/ledger", params={"limit": 0})
    assert (r.status_code, r.json()["field"]) == (422, "limit")
    r = await client.get("/v1/informants/bad{id}/points")
    assert (r.status_code, r.json()["field"]) == (422, "informant_id")
    # nothing of the above was applied, and the service still serves
    assert (await client.get(f"/v1/informants/{who}/points")).json()["balance"] == 0
    assert (await client.post("/v1/events", json=body(who, "login"))).json()["points"] == 1


async def test_late_events_are_stored_and_credit_nothing(client: Client) -> None:
    who = unique("u")
    old = (datetime.now(UTC) - timedelta(hours=73)).isoformat()
    r = await client.post("/v1/events", json=body(who, "share", content_id="c", occurred_at=old))
    assert r.status_code == 200
    assert (r.json()["points"], r.json()["late"], r.json()["lines"][0]["reason"]) == (
        0,
        True,
        "late",
    )


async def test_batch_credits_valid_items_and_reports_invalid_ones_in_place(client: Client) -> None:
    who = unique("u")
    good = [body(who, "post", content_id=f"p{i}") for i in range(4)]
    events = [good[0], {"event_id": 7}, good[1], body(who, "browse"), good[2], good[3], good[0]]
    r = await client.post("/v1/events/batch", json={"events": events})
    assert r.status_code == 200, r.text
    out = r.json()
    assert [i["status"] for i in out["results"]] == [200, 422, 200, 422, 200, 200, 200]
    assert out["results"][1]["error"]["field"] == "event_id"
    assert out["results"][3]["error"]["field"] == "content_id"
    points = [i["result"]["points"] for i in out["results"] if i["status"] == 200]
    assert points == [3, 3, 3, 0, 3]  # cap of 9 a day; the repeated first event replays
    assert out["results"][5]["result"]["lines"][0]["reason"] == "daily_cap"
    assert out["results"][6]["result"]["replayed"] is True
    assert (out["accepted"], out["rejected"]) == (5, 2)
    balance = (await client.get(f"/v1/informants/{who}/points")).json()["balance"]
    assert balance == 9
    # A batch with nothing valid in it answers every item in place, and the service
    # goes on crediting (nothing was sent to Redis for it).
    refused = await client.post("/v1/events/batch", json=[{"event_id": 8}, body(who, "browse")])
    assert [i["status"] for i in refused.json()["results"]] == [422, 422]
    bare = await client.post("/v1/events/batch", json=[body(who, "login")])
    assert bare.json()["results"][0]["result"]["points"] == 1
    too_many = await client.post("/v1/events/batch", json={"events": [body(who, "login")] * 1001})
    assert (too_many.status_code, too_many.json()["field"]) == (422, "events")


async def test_concurrent_requests_for_one_informant_never_exceed_a_cap(client: Client) -> None:
    who = unique("u")
    # 100 at once: within an informant's rate (120 new events a minute by default).
    events = [body(who, "share", content_id=f"c{i}") for i in range(100)]
    answers = await asyncio.gather(*(client.post("/v1/events", json=e) for e in events))
    assert all(a.status_code == 200 for a in answers)
    assert sum(a.json()["points"] for a in answers) == 20
    assert sum(a.json()["counters"]["shares"] for a in answers) == 100
    balances = sorted(a.json()["balance"] for a in answers)
    assert balances[-1] == 20
    assert (await client.get(f"/v1/informants/{who}/points")).json()["balance"] == 20
    ledger = (await client.get(f"/v1/informants/{who}/ledger", params={"limit": 500})).json()
    assert sum(e["points"] for e in ledger["entries"]) == 20


async def test_one_event_sent_fifty_times_at_once_credits_once(client: Client) -> None:
    who = unique("u")
    event = body(who, "post", content_id="p1")
    answers = await asyncio.gather(*(client.post("/v1/events", json=event) for _ in range(50)))
    assert all(a.status_code == 200 for a in answers)
    assert [a.json()["replayed"] for a in answers].count(False) == 1
    assert {a.json()["points"] for a in answers} == {3}
    ledger = (await client.get(f"/v1/informants/{who}/ledger")).json()
    assert [e["points"] for e in ledger["entries"]] == [3]
    assert (await client.get(f"/v1/informants/{who}/points")).json()["balance"] == 3


async def test_redemptions_are_idempotent_and_never_overdraw(client: Client) -> None:
    who = unique("u")
    for i in range(3):
        await client.post("/v1/events", json=body(who, "post", content_id=f"p{i}"))
    spend = {"redemption_id": unique("r"), "points": 4, "item": "科普书籍"}
    url = f"/v1/informants/{who}/redemptions"
    first = await client.post(url, json=spend)
    assert first.status_code == 200, first.text
    assert (first.json()["balance"], first.json()["replayed"]) == (5, False)
    again = await client.post(url, json=spend)
    assert (again.json()["balance"], again.json()["replayed"]) == (5, True)
    reused = await client.post(url, json={**spend, "points": 1})
    assert (reused.status_code, reused.json()["field"]) == (409, "redemption_id")
    racing = [{"redemption_id": unique("r"), "points": 2, "item": "pen"} for _ in range(10)]
    answers = await asyncio.gather(*(client.post(url, json=r) for r in racing))
    assert sorted(a.status_code for a in answers) == [200, 200] + [409] * 8
    assert (await client.get(f"/v1/informants/{who}/points")).json()["balance"] == 1
    bad = await client.post(url, json={"redemption_id": "x", "points": 0, "item": "pen"})
    assert (bad.status_code, bad.json()["field"]) == (422, "points")
    ledger = (await client.get(f"/v1/informants/{who}/ledger")).json()["entries"]
    assert sum(e["points"] for e in ledger) == 1
    assert [e["kind"] for e in ledger][:3] == ["redemption"] * 3


async def test_reversal_claws_back_once(client: Client) -> None:
    who = unique("u")
    event = body(who, "share", content_id="c1")
    await client.post("/v1/events", json=event)
    url = f"/v1/events/{event['event_id']}/reversal"
    first = await client.post(url, json={"reason": "fraud"})
    assert first.status_code == 200, first.text
    assert (first.json()["points"], first.json()["balance"], first.json()["replayed"]) == (
        2,
        0,
        False,
    )
    again = await client.post(url)
    assert (again.json()["balance"], again.json()["replayed"]) == (0, True)
    assert (await client.post("/v1/events/nope/reversal")).status_code == 404
    duplicate = body(who, "share", content_id="c1")  # paid nothing: reversing it takes 0
    await client.post("/v1/events", json=duplicate)
    zero = await client.post(f"/v1/events/{duplicate['event_id']}/reversal")
    assert (zero.status_code, zero.json()["points"], zero.json()["balance"]) == (200, 0, 0)
    ledger = (await client.get(f"/v1/informants/{who}/ledger")).json()["entries"]
    assert [(e["kind"], e["points"]) for e in ledger] == [
        ("reversal", 0),
        ("reversal", -2),
        ("credit", 2),
    ]
    assert len({e["rule_version"] for e in ledger}) == 1  # every entry names the rule set
    points = (await client.get(f"/v1/informants/{who}/points")).json()
    assert (points["balance"], points["earned"]) == (0, 0)


async def test_ledger_pages_with_a_cursor(client: Client) -> None:
    who = unique("u")
    ids = [body(who, "browse", content_id=f"c{i}") for i in range(7)]
    for e in ids:
        await client.post("/v1/events", json=e)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(f"/v1/informants/{who}/ledger", params=params)).json()
        seen += [e["ref_id"] for e in page["entries"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [e["event_id"] for e in reversed(ids)]


async def test_dry_run_records_nothing(client: Client) -> None:
    who = unique("u")
    r = await client.post("/v1/events", json=body(who, "post", content_id="p", dry_run=True))
    assert (r.json()["points"], r.json()["dry_run"]) == (3, True)
    assert (await client.get(f"/v1/informants/{who}/points")).json()["balance"] == 0
    assert (await client.get(f"/v1/informants/{who}/ledger")).json()["entries"] == []


async def test_operations_endpoints(client: Client) -> None:
    assert (await client.get("/health/live")).status_code == 200
    assert (await client.get("/health/ready")).status_code == 200
    await client.post("/v1/events", json=body(unique("u"), "login"))
    metrics = (await client.get("/metrics")).text
    assert 'points_events_total{action="login",outcome="credited"} 1.0' in metrics
    assert "points_http_request_duration_seconds_bucket" in metrics
    assert 'points_rules_info{version="' in metrics
    schema = (await client.get("/schema/openapi.json")).json()
    request = schema["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]
    assert request["schema"] == {"$ref": "#/components/schemas/Event"}
    answer = schema["paths"]["/v1/events"]["post"]["responses"]["200"]["content"]
    assert answer["application/json"]["schema"] == {"$ref": "#/components/schemas/EventResult"}
    assert 'route="/v1/events",status="200"' in metrics
    event_schema = schema["components"]["schemas"]["Event"]
    assert set(event_schema["required"]) == {"event_id", "informant_id", "action", "occurred_at"}
    assert {"/v1/events", "/v1/events/batch", "/v1/informants/{informant_id}/points"} <= set(
        schema["paths"]
    )


async def test_a_retry_after_redis_forgot_gets_the_first_answer_from_the_ledger(
    client: Client, settings: Settings
) -> None:
    who = unique("u")
    event = body(who, "share", content_id="c1")
    first = (await client.post("/v1/events", json=event)).json()
    # What an expired idempotency record (or a lost Redis) looks like: the keys are gone.
    redis = redis_client(settings)
    keys = [k async for k in redis.scan_iter(match=f"{settings.redis_prefix}:{{{who}}}:*")]
    assert keys
    await redis.unlink(*keys)  # one informant's keys: one slot
    await redis.aclose()
    again = (await client.post("/v1/events", json=event)).json()
    assert again == {**first, "replayed": True}
    ledger = (await client.get(f"/v1/informants/{who}/ledger")).json()["entries"]
    assert [e["points"] for e in ledger] == [2]
    # The informant's state was put back from the ledger before the retry was judged:
    # the retry found the share already counted today, and the balance is the ledger's,
    # not counted twice by the next retry either.
    points = (await client.get(f"/v1/informants/{who}/points")).json()
    assert (points["balance"], points["today"]["share"]["count"]) == (2, 1)
    third = (await client.post("/v1/events", json=event)).json()
    assert third == {**first, "replayed": True}
    points = (await client.get(f"/v1/informants/{who}/points")).json()
    assert (points["balance"], points["today"]["share"]["count"]) == (2, 1)


async def test_an_event_id_taken_by_another_informant_leaves_no_trace(client: Client) -> None:
    first, second = unique("u"), unique("u")
    event = body(first, "share", content_id="c1")
    assert (await client.post("/v1/events", json=event)).json()["points"] == 2
    stolen = await client.post("/v1/events", json={**event, "informant_id": second})
    assert (stolen.status_code, stolen.json()["field"]) == (409, "event_id")
    points = (await client.get(f"/v1/informants/{second}/points")).json()
    assert (points["balance"], points["today"]["share"]["count"]) == (0, 0)
    # the share of c1 was not recorded for the second informant: it still pays
    own = await client.post("/v1/events", json=body(second, "share", content_id="c1"))
    assert (own.json()["points"], own.json()["lines"][0]["reason"]) == (2, "credited")


async def test_a_batch_that_reuses_a_recorded_id_first_still_replays_the_owner(
    client: Client,
) -> None:
    """Two items of one batch with an id the ledger holds: another informant's first
    (refused), then the owner's retry (a replay). The retry was judged against the other
    informant's body, not the ledger's, and refused too."""
    owner, other = unique("u"), unique("u")
    event = body(owner, "share", content_id="c1")
    assert (await client.post("/v1/events", json=event)).json()["points"] == 2
    r = await client.post("/v1/events/batch", json=[{**event, "informant_id": other}, event])
    results = r.json()["results"]
    assert [i["status"] for i in results] == [409, 200], results
    assert results[0]["error"]["field"] == "event_id"
    assert (results[1]["result"]["replayed"], results[1]["result"]["points"]) == (True, 2)
    assert (await client.get(f"/v1/informants/{other}/points")).json()["balance"] == 0


async def test_a_refused_batch_item_does_not_weigh_on_its_informants_later_items(
    client: Client,
) -> None:
    """An item with an id the ledger holds for another informant, then the same
    informant's own share of the same content: the refused item must not make the share
    a same-day duplicate (it used to be judged in Redis first, then taken back)."""
    owner, other = unique("u"), unique("u")
    taken = body(owner, "share", content_id="c1")
    assert (await client.post("/v1/events", json=taken)).json()["points"] == 2
    own = body(other, "share", content_id="c1")
    r = await client.post("/v1/events/batch", json=[{**taken, "informant_id": other}, own])
    results = r.json()["results"]
    assert [i["status"] for i in results] == [409, 200], results
    assert (results[1]["result"]["points"], results[1]["result"]["replayed"]) == (2, False)
    assert (await client.get(f"/v1/informants/{other}/points")).json()["balance"] == 2
    again = await client.post("/v1/events/batch", json=[own])
    assert again.json()["results"][0]["result"]["replayed"] is True
