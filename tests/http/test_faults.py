"""A dependency lost in the middle of serving: 503 with Retry-After, nothing acknowledged
is lost, nothing is credited twice, and service resumes by itself when it returns.

The first two tests cut a single request's path; the `_mid_load` ones cut it under a
load of a server in a real process (tests/http/fault_load.py) and print their figures
in the "fault figures" section of pytest's summary."""

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from urllib.parse import urlsplit

import pytest
from prometheus_client import CollectorRegistry

from points_service.http.app import create_app
from points_service.settings import Settings
from tests.conftest import REDIS_URL, api_client, unique
from tests.http.fault_load import FaultLoad, backend, make_events
from tests.http.server import ServerProcess
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
        login = body(who, "login")
        batch = await client.post("/v1/events/batch", json=[signed, login, repeat])
        assert batch.status_code == 503
        assert (await client.get("/health/ready")).status_code == 503
        assert "points_state_undo_failures_total 0.0" in (await client.get("/metrics")).text

        proxy.restore()
        # Every retry is answered; each event is in the ledger once, whether its first
        # delivery was refused before it reached the database or kept to be made again.
        retried = await client.post("/v1/events", json=during)
        assert retried.status_code == 200
        assert retried.json()["points"] == 3
        again = await client.post("/v1/events", json=during)
        assert again.json()["replayed"] is True
        signed_again = (await client.post("/v1/events", json=signed)).json()
        assert (signed_again["points"], signed_again["streak"]) == (5, 1)
        assert (await client.post("/v1/events", json=login)).json()["points"] == 1
        ledger = (await client.get(f"/v1/informants/{who}/ledger")).json()["entries"]
        assert sorted(e["points"] for e in ledger) == [1, 3, 3, 5]
        assert (await client.get(f"/v1/informants/{who}/points")).json()["balance"] == 12
        assert (await client.get("/health/ready")).status_code == 200


async def test_a_commit_whose_answer_was_lost_is_kept_and_written(
    base_settings: Settings, pg_proxy: tuple[Proxy, str]
) -> None:
    """The database commits, and its answer never arrives (a half-open connection): the
    client gets a 503, what Redis judged is kept (taking it back would let the next
    events pass the cap the committed one reached), and the service writes it again
    once the database answers, so the ledger holds it once, with no retry at all."""
    proxy, url = pg_proxy
    settings = replace(base_settings, database_url=url, db_command_timeout=0.5)
    async with api_client(create_app(settings, CollectorRegistry()), timeout=60) as client:
        who = unique("u")
        assert (await client.post("/v1/events", json=body(who, "login"))).status_code == 200
        proxy.mute()
        signed = body(who, "sign_in")
        answer = await client.post("/v1/events", json=signed)
        assert (answer.status_code, answer.headers["retry-after"]) == (503, "1")
        proxy.cut()  # every connection that heard nothing is dropped
        proxy.restore()
        # Redis kept the sign-in: a second one the same day pays nothing.
        second = await client.post("/v1/events", json=body(who, "sign_in"))
        assert second.status_code == 200, second.text
        assert second.json()["points"] == 0
        deadline = asyncio.get_running_loop().time() + 30
        while True:  # the health watch writes it again within a round or two (5 s each)
            ledger = (await client.get(f"/v1/informants/{who}/ledger")).json()["entries"]
            refs = sorted(e["ref_id"] for e in ledger)
            if signed["event_id"] in refs or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.5)
        assert refs.count(signed["event_id"]) == 1, refs
        assert sum(e["points"] for e in ledger) == 1 + 5
        balance = (await client.get(f"/v1/informants/{who}/points")).json()["balance"]
        assert balance == 1 + 5
        retried = await client.post("/v1/events", json=signed)
        assert (retried.json()["points"], retried.json()["replayed"]) == (5, True)


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


OUTAGE = 1.5  # seconds the dependency is away, with the load going on
EVENTS = 3000


async def _load_with_outage(served: Settings, ledger: Settings, proxy: Proxy, label: str) -> None:
    """A server on `served` loaded with EVENTS events; `proxy` cut once a third of them
    are acknowledged and restored OUTAGE seconds later; the rest retried; the ledger
    read through `ledger`."""
    server = ServerProcess(served, served.data_dir / "server.log")
    await asyncio.to_thread(server.start)
    load = FaultLoad(server.port, make_events(served.redis_prefix, EVENTS), label)

    async def outage() -> None:
        await load.acknowledged(EVENTS // 3)
        await asyncio.to_thread(proxy.cut)
        await asyncio.sleep(OUTAGE)
        await asyncio.to_thread(proxy.restore)
        load.restored()

    await load.exercise(outage(), server, ledger)
    figures = load.figures
    assert figures.refused > 0, "the outage met no request"
    assert figures.no_answer == 0  # 503s, never a hang-up
    assert figures.recovered_in is not None


@pytest.mark.slow
async def test_redis_stopped_mid_load(settings: Settings, redis_proxy: tuple[Proxy, str]) -> None:
    """Redis away for OUTAGE seconds under load: 503s with Retry-After, no partial credit
    (what Redis says of every informant is what the ledger says), and back by itself."""
    proxy, url = redis_proxy
    served = replace(settings, redis_url=url)
    await _load_with_outage(
        served, settings, proxy, f"redis stopped mid-load ({backend(settings)})"
    )


@pytest.mark.slow
async def test_database_stopped_mid_load(
    base_settings: Settings, postgres_url: str, pg_proxy: tuple[Proxy, str]
) -> None:
    """PostgreSQL away for OUTAGE seconds under load: 503s with Retry-After (no buffering:
    an event is acknowledged only once it is committed), no acknowledged credit lost, no
    partial credit left in Redis, and back by itself. PostgreSQL only: the SQLite ledger
    is a file the service itself opens, with nothing in between to stop."""
    proxy, url = pg_proxy
    ledger = replace(base_settings, database_url=postgres_url)
    served = replace(ledger, database_url=url)
    await _load_with_outage(served, ledger, proxy, "database stopped mid-load (postgres)")


async def test_redis_back_idle_connections_reconnect(
    base_settings: Settings, redis_proxy: tuple[Proxy, str]
) -> None:
    """Connections that sat in the pool while Redis was away are not handed out dead: the
    first request after it returns is answered (redis-py's maintenance notifications,
    "auto" by default, had turned the pool's check of a connection off: a 503 each)."""
    proxy, url = redis_proxy
    settings = replace(base_settings, redis_url=url)
    async with api_client(create_app(settings, CollectorRegistry()), timeout=60) as client:
        who = unique("u")
        assert (await client.post("/v1/events", json=body(who, "login"))).status_code == 200
        assert (await client.get(f"/v1/informants/{who}/points")).status_code == 200
        proxy.cut()
        proxy.restore()
        points = await client.get(f"/v1/informants/{who}/points")
        assert points.status_code == 200, points.text
        assert points.json()["balance"] == 1
