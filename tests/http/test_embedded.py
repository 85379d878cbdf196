"""`points-service serve` on its defaults: a SQLite file and the embedded Redis (AOF)."""

from dataclasses import replace
from pathlib import Path

import httpx
from redis import Redis
from redis.exceptions import RedisError

from points_service.settings import Settings
from tests.conftest import unique
from tests.http.server import ServerProcess
from tests.http.test_events_api import body


def embedded_redis_answers(data_dir: Path) -> bool:
    client = Redis(unix_socket_path=str(data_dir / "redis" / "redis.sock"), socket_timeout=1)
    try:
        return bool(client.ping())
    except RedisError:
        return False
    finally:
        client.close()


def test_serves_on_embedded_defaults_and_keeps_state_across_restarts(
    base_settings: Settings, tmp_path: Path
) -> None:
    settings = replace(base_settings, redis_url=None, database_url=None, data_dir=tmp_path / "var")
    server = ServerProcess(settings, tmp_path / "server.log")
    who = unique("u")
    server.start()
    try:
        r = httpx.post(f"{server.url}/v1/events", json=body(who, "sign_in"))
        assert r.status_code == 200, r.text
        assert r.json()["balance"] == 5
        assert embedded_redis_answers(settings.data_dir)
    finally:
        server.stop()
    assert not embedded_redis_answers(settings.data_dir), "embedded Redis outlived the service"
    assert (settings.data_dir / "points.sqlite3").exists()
    assert list((settings.data_dir / "redis").glob("appendonly.aof*"))

    server.start()
    try:
        again = httpx.post(f"{server.url}/v1/events", json=body(who, "sign_in"))
        assert again.json()["lines"][0]["reason"] == "duplicate"  # state came back from the AOF
        points = httpx.get(f"{server.url}/v1/informants/{who}/points").json()
        assert (points["balance"], points["streak"]) == (5, 1)
        ledger = httpx.get(f"{server.url}/v1/informants/{who}/ledger").json()
        assert [e["points"] for e in ledger["entries"]] == [5]
    finally:
        server.stop()
