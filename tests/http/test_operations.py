"""Rule reloads, and answers while a dependency is unreachable."""

import shutil
import socket
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from points_service.domain.rules import RuleSetInvalid
from points_service.http.app import create_app
from points_service.settings import Settings
from tests.conftest import AUTH, ROOT, api_client, unique
from tests.http.server import ServerProcess
from tests.http.test_events_api import body


async def test_reload_swaps_valid_rules_and_refuses_broken_ones(
    base_settings: Settings, tmp_path: Path
) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    app = create_app(replace(base_settings, rules_dir=rules), CollectorRegistry())
    async with api_client(app) as client:
        live = (await client.get("/v1/admin/rules")).json()["version"]

        text = (rules / "default.toml").read_text()
        (rules / "default.toml").write_text(text.replace("points = 3", "points = -3"))
        refused = await client.post("/v1/admin/rules/reload")
        assert refused.status_code == 422
        assert refused.json()["version"] == live and not refused.json()["last_reload_ok"]
        assert any("rule 'post': field `points`" in p for p in refused.json()["problems"])
        posted = await client.post("/v1/events", json=body(unique("u"), "post", content_id="p"))
        assert posted.json()["points"] == 3 and posted.json()["rule_version"] == live

        (rules / "default.toml").write_text(text.replace("points = 3", "points = 4"))
        swapped = await client.post("/v1/admin/rules/reload")
        assert swapped.status_code == 200 and swapped.json()["version"] != live
        posted = await client.post("/v1/events", json=body(unique("u"), "post", content_id="p"))
        assert posted.json()["points"] == 4
        assert posted.json()["rule_version"] == swapped.json()["version"]
        metrics = (await client.get("/metrics")).text
        assert 'points_rules_reloads_total{result="refused"} 1.0' in metrics
        assert f'points_rules_info{{version="{swapped.json()["version"]}"}} 1.0' in metrics


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_redis_unreachable_is_a_503_with_retry_after(base_settings: Settings) -> None:
    settings = replace(base_settings, redis_url=f"redis://127.0.0.1:{closed_port()}/0")
    async with api_client(create_app(settings, CollectorRegistry())) as client:
        who = unique("u")
        r = await client.post("/v1/events", json=body(who, "login"))
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        batch = await client.post("/v1/events/batch", json=[body(who, "login")])
        assert batch.status_code == 503
        assert (await client.get("/health/ready")).status_code == 503
        assert (await client.get("/health/live")).status_code == 200
        # nothing reached the ledger
        assert (await client.get(f"/v1/informants/{who}/ledger")).json()["entries"] == []


async def test_a_process_started_on_broken_rules_serves_the_last_good_set(
    base_settings: Settings, tmp_path: Path
) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    settings = replace(base_settings, rules_dir=rules)
    async with api_client(create_app(settings, CollectorRegistry())) as client:
        good = (await client.get("/v1/admin/rules")).json()["version"]

    text = (rules / "default.toml").read_text()
    (rules / "default.toml").write_text(text.replace("points = 3", "points = -3"))
    async with api_client(create_app(settings, CollectorRegistry())) as client:
        status = (await client.get("/v1/admin/rules")).json()
        assert status["version"] == good
        assert status["last_reload_ok"] is False
        assert any("rule 'post': field `points`" in p for p in status["problems"])
        posted = await client.post("/v1/events", json=body(unique("u"), "post", content_id="p"))
        assert posted.json()["points"] == 3

    fresh = replace(settings, data_dir=tmp_path / "elsewhere")  # no last good set there
    with pytest.raises(BaseExceptionGroup) as caught:  # the test client's task group
        async with api_client(create_app(fresh, CollectorRegistry())):
            pass
    assert caught.value.subgroup(RuleSetInvalid) is not None


def test_a_reload_through_one_worker_reaches_every_worker(
    base_settings: Settings, tmp_path: Path
) -> None:
    """Two workers: the admin endpoint reloads the one that answers, which announces it
    in Redis; the other reloads its own files within a health round."""
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    settings = replace(base_settings, rules_dir=rules)
    server = ServerProcess(settings, tmp_path / "server.log", POINTS_WORKERS="2")
    server.start()
    try:

        def versions() -> dict[int, str]:
            """Version by worker, over fresh connections (the kernel spreads them)."""
            seen: dict[int, str] = {}
            for _ in range(40):
                with httpx.Client(base_url=server.url, headers=AUTH, timeout=10) as http:
                    answer = http.get("/v1/admin/rules").json()
                seen[answer["worker_pid"]] = answer["version"]
            return seen

        before = versions()
        assert len(before) == 2, "both workers answered"
        [live] = set(before.values())
        text = (rules / "default.toml").read_text()
        (rules / "default.toml").write_text(text.replace("points = 3", "points = 4"))
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=10) as http:
            swapped = http.post("/v1/admin/rules/reload").json()
        assert swapped["version"] != live
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            now = versions()
            if set(now.values()) == {swapped["version"]} and len(now) == 2:
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"the workers serve {now}, not {swapped['version']}")
    finally:
        server.stop()
