"""Limits an operator sets: an informant's events per minute, the body sizes and the
batch size. Past each, a clear 4xx that names what was too much; nothing is recorded of
what was refused; the service keeps serving."""

from dataclasses import replace

from prometheus_client import CollectorRegistry

from points_service.http.app import create_app
from points_service.settings import Settings
from tests.conftest import api_client, unique
from tests.http.test_events_api import body


async def test_an_informant_past_the_rate_gets_429_and_nothing_is_recorded(
    settings: Settings,
) -> None:
    limited = replace(settings, rate_per_informant=4)
    async with api_client(create_app(limited, CollectorRegistry()), timeout=60) as client:
        hasty, calm = unique("u"), unique("u")
        sent = [body(hasty, "browse", content_id=f"c{n}") for n in range(4)]
        for event in sent:
            assert (await client.post("/v1/events", json=event)).status_code == 200
        over = body(hasty, "like", content_id="c1")
        refused = await client.post("/v1/events", json=over)
        assert refused.status_code == 429, refused.text
        error = refused.json()
        assert (error["code"], error["field"]) == ("rate_limited", "informant_id")
        assert 1 <= int(refused.headers["retry-after"]) == error["retry_after"] <= 60
        # A retry of an event already answered is not a new event: it is answered.
        again = await client.post("/v1/events", json=sent[0])
        assert (again.status_code, again.json()["replayed"]) == (200, True)
        # In a batch, the informant's events are refused in place; another's go through.
        batch = await client.post(
            "/v1/events/batch", json=[body(hasty, "login"), body(calm, "login"), sent[1]]
        )
        assert batch.status_code == 200
        items = batch.json()["results"]
        assert [i["status"] for i in items] == [429, 200, 200]
        assert items[0]["error"]["code"] == "rate_limited"
        assert items[0]["error"]["retry_after"] >= 1
        ledger = (await client.get(f"/v1/informants/{hasty}/ledger")).json()["entries"]
        assert sorted(e["ref_id"] for e in ledger) == sorted(e["event_id"] for e in sent)
        metrics = (await client.get("/metrics")).text
        assert 'points_events_refused_total{code="rate_limited"} 2.0' in metrics


async def test_body_and_batch_limits_are_settings(base_settings: Settings) -> None:
    tight = replace(base_settings, max_batch=3, max_event_bytes=2048, max_body_bytes=8192)
    async with api_client(create_app(tight, CollectorRegistry()), timeout=60) as client:
        who = unique("u")
        four = [body(who, "browse", content_id=f"c{n}") for n in range(4)]
        too_many = await client.post("/v1/events/batch", json=four)
        assert too_many.status_code == 422
        assert (too_many.json()["field"], "at most 3 events" in too_many.json()["detail"]) == (
            "events",
            True,
        )
        big = body(who, "post", content_id="p1", attributes={"text": "x" * 3000})
        too_big = await client.post("/v1/events", json=big)
        assert (too_big.status_code, too_big.json()["field"]) == (413, "body")
        huge = [body(who, "browse", content_id="c", attributes={"t": "y" * 3000})] * 3
        assert (await client.post("/v1/events/batch", json=huge)).status_code == 413
        # What fits is served as before, and nothing of the refusals was recorded.
        fits = await client.post("/v1/events/batch", json=four[:3])
        assert fits.json()["accepted"] == 3
        ledger = (await client.get(f"/v1/informants/{who}/ledger")).json()["entries"]
        assert len(ledger) == 3
        document = (await client.get("/schema/openapi.json")).json()
        events = document["components"]["schemas"]["EventBatch"]["properties"]["events"]
        assert events["maxItems"] == 3
