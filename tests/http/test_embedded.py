"""`points-service serve` on its defaults: a SQLite file and the embedded Redis (AOF)."""

import shutil
import signal
import time
from dataclasses import replace
from pathlib import Path

import httpx
from redis import Redis
from redis.exceptions import RedisError

from points_service.settings import Settings
from tests.conftest import AUTH, ROOT, unique
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
        r = httpx.post(f"{server.url}/v1/events", headers=AUTH, json=body(who, "sign_in"))
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
        again = httpx.post(f"{server.url}/v1/events", headers=AUTH, json=body(who, "sign_in"))
        assert again.json()["lines"][0]["reason"] == "duplicate"  # state came back from the AOF
        points = httpx.get(f"{server.url}/v1/informants/{who}/points", headers=AUTH).json()
        assert (points["balance"], points["streak"]) == (5, 1)
        ledger = httpx.get(f"{server.url}/v1/informants/{who}/ledger", headers=AUTH).json()
        assert [e["points"] for e in ledger["entries"]] == [5]
    finally:
        server.stop()


def test_sighup_reloads_valid_rules_and_keeps_serving_on_broken_ones(
    base_settings: Settings, tmp_path: Path
) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    server = ServerProcess(replace(base_settings, rules_dir=rules), tmp_path / "server.log")
    server.start()
    try:
        assert server.process is not None

        def live() -> dict[str, object]:
            answer: dict[str, object] = httpx.get(
                f"{server.url}/v1/admin/rules", headers=AUTH
            ).json()
            return answer

        def hup_and_wait(previous: object) -> dict[str, object]:
            assert server.process is not None
            server.process.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                state = live()
                if state["last_reload_at"] != previous:
                    return state
                time.sleep(0.05)
            raise AssertionError("no reload after SIGHUP")

        first = live()
        text = (rules / "default.toml").read_text()
        (rules / "default.toml").write_text(text.replace("points = 3", "points = 4"))
        swapped = hup_and_wait(first["last_reload_at"])
        assert swapped["last_reload_ok"] is True
        assert swapped["version"] != first["version"]

        (rules / "default.toml").write_text(text.replace("points = 3", 'points = "x"'))
        refused = hup_and_wait(swapped["last_reload_at"])
        assert refused["last_reload_ok"] is False
        assert refused["version"] == swapped["version"]
        posted = httpx.post(
            f"{server.url}/v1/events", json=body(unique("u"), "post", content_id="p"), headers=AUTH
        )
        assert posted.json()["points"] == 4
    finally:
        server.stop()
    assert "rules_reload" in (tmp_path / "server.log").read_text()
