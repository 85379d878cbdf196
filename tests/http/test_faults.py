"""A dependency lost in the middle of serving: 503 with Retry-After, nothing acknowledged
is lost, nothing is credited twice, and service resumes by itself when it returns."""

from collections.abc import Iterator
from dataclasses import replace
from urllib.parse import urlsplit

import pytest
from prometheus_client import CollectorRegistry

from points_service.http.app import create_app
from points_service.settings import Settings
from tests.conftest import REDIS_URL, api_client, unique
from tests.http.test_events_api import body
from tests.proxy import Proxy


@pytest.fixture
def pg_proxy(postgres_url: str) -> Iterator[tuple[Proxy, str]]:
    parts = urlsplit(postgres_url)
    proxy = Proxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    proxy.start()
    user = f"{parts.username}@" if parts.username else ""
    yield proxy, parts._replace(netloc=f"{user}127.0.0.1:{proxy.port}").geturl()
    proxy.close()


@pytest.fixture
def redis_proxy() -> Iterator[tuple[Proxy, str]]:
    parts = urlsplit(REDIS_URL)
    proxy = Proxy(parts.hostname or "127.0.0.1", parts.port or 6379)
    proxy.start()
    yield proxy, parts._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()
    proxy.close()


async def test_database_lost_and_back(base_settings: Settings, pg_proxy: tuple[Proxy, str]) -> None:
    proxy, url = pg_proxy
    settings = replace(base_settings, database_url=url, db_pool_size=2)
    async with api_client(create_app(settings, CollectorRegistry()), timeout=60) as client:
        who = unique("u")
        first = body(who, "post", content_id="p1")
        assert (await client.post("/v1/events", json=first)).status_code == 200

        proxy.cut()
        during = body(who, "post", content_id="p2")
        lost = await client.post("/v1/events", json=during)
        assert lost.status_code == 503
        assert lost.headers["retry-after"] == "1"
        signed = body(who, "sign_in")
        repeat = body(who, "post", content_id="p1")  # a duplicate: pays 0, changes little
        batch = await client.post("/v1/events/batch", json=[signed, body(who, "login"), repeat])
        assert batch.status_code == 503
        assert (await client.get("/health/ready")).status_code == 503
        # Nothing of the unacknowledged events is left in Redis either.
        points = (await client.get(f"/v1/informants/{who}/points")).json()
        assert (points["balance"], points["streak"], points["today"]["post"]["count"]) == (3, 0, 1)
        assert "points_state_undo_failures_total 0.0" in (await client.get("/metrics")).text

        proxy.restore()
        ledger = (await client.get(f"/v1/informants/{who}/ledger")).json()["entries"]
        assert [e["ref_id"] for e in ledger] == [first["event_id"]]  # the 503 wrote nothing
        retried = await client.post("/v1/events", json=during)
        assert retried.status_code == 200
        assert (retried.json()["points"], retried.json()["replayed"]) == (3, False)
        again = await client.post("/v1/events", json=during)
        assert again.json()["replayed"] is True
        signed_again = (await client.post("/v1/events", json=signed)).json()
        assert (signed_again["points"], signed_again["streak"]) == (5, 1)
        ledger = (await client.get(f"/v1/informants/{who}/ledger")).json()["entries"]
        assert sorted(e["points"] for e in ledger) == [3, 3, 5]
        assert (await client.get(f"/v1/informants/{who}/points")).json()["balance"] == 11
        assert (await client.get("/health/ready")).status_code == 200


async def test_redis_lost_and_back(base_settings: Settings, redis_proxy: tuple[Proxy, str]) -> None:
    proxy, url = redis_proxy
    settings = replace(base_settings, redis_url=url)
    async with api_client(create_app(settings, CollectorRegistry()), timeout=60) as client:
        who = unique("u")
        assert (await client.post("/v1/events", json=body(who, "login"))).status_code == 200

        proxy.cut()
        during = body(who, "like", content_id="c1")
        lost = await client.post("/v1/events", json=during)
        assert lost.status_code == 503
        assert lost.headers["retry-after"] == "1"
        batch = await client.post("/v1/events/batch", json=[during])
        assert batch.status_code == 503

        proxy.restore()
        retried = await client.post("/v1/events", json=during)
        assert retried.status_code == 200
        assert (retried.json()["points"], retried.json()["balance"]) == (1, 2)
        ledger = (await client.get(f"/v1/informants/{who}/ledger")).json()["entries"]
        assert sorted(e["points"] for e in ledger) == [1, 1]
