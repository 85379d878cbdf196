"""Log lines: JSON, one summary line per request with its request id, route and event
id; informant ids hashed or left out; names and phone numbers never."""

import json
from dataclasses import replace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from points_service.http.app import create_app
from points_service.settings import Settings, SettingsError, load_settings
from tests.conftest import api_client, unique
from tests.http.test_events_api import body


def lines(text: str) -> list[dict[str, Any]]:
    found = []
    for line in text.splitlines():
        if line.startswith("{"):
            found.append(json.loads(line))
    return found


async def test_one_json_line_per_request_with_ids_and_no_personal_data(
    base_settings: Settings, capfd: pytest.CaptureFixture[str]
) -> None:
    settings = replace(base_settings, access_log=True, log_level="INFO", log_format="json")
    who, name, phone = unique("u"), "张三丰", "13800138000"
    event = body(who, "login", attributes={"phone": phone})
    async with api_client(create_app(settings, CollectorRegistry())) as client:
        capfd.readouterr()
        given = await client.post("/v1/events", json=event, headers={"X-Request-ID": "req-42"})
        made = await client.get(f"/v1/informants/{who}/points")
        hostile = await client.get("/health/live", headers={"X-Request-ID": "x" * 500})
        profile = {"name": name, "province": "640000", "unit_name": f"电话 {phone}"}
        assert (await client.put(f"/v1/informants/{who}", json=profile)).is_success
        await client.post("/v1/events/batch", json=[body(who, "browse", content_id="c")])
        other = body(unique("u"), "login")
        await client.post("/v1/events", json=other)
    # The service's lines only: the test's own HTTP client logs the URLs it calls.
    text = "\n".join(line for line in capfd.readouterr().err.splitlines() if line[:1] == "{")
    requests = [line for line in lines(text) if line["event"] == "request"]

    assert given.headers["x-request-id"] == "req-42"
    assert len(made.headers["x-request-id"]) == 16
    assert hostile.headers["x-request-id"] != "x" * 500  # not echoed: a new one
    assert len(requests) == 6
    first = requests[0]
    assert first["request_id"] == "req-42" and first["route"] == "/v1/events"
    assert first["event_id"] == event["event_id"] and first["status"] == 200
    assert first["level"] == "info" and "timestamp" in first and first["ms"] >= 0
    assert len(first["informant"]) == 16 and first["informant"] != who
    # The same informant hashes the same; another one differently.
    assert requests[-1]["informant"] != first["informant"]
    assert requests[1]["route"] == "/v1/informants/{informant_id}/points"
    assert requests[1]["request_id"] == made.headers["x-request-id"]
    assert requests[4]["events"] == 1
    assert first["key"] == "test-admin"  # the API key that made the request, by name
    assert "key" not in requests[2]  # health is public: no key
    for secret in (who, name, phone):
        assert secret not in text, f"{secret!r} reached the log"


async def test_informant_ids_can_be_left_out(
    base_settings: Settings, capfd: pytest.CaptureFixture[str]
) -> None:
    settings = replace(base_settings, access_log=True, log_level="INFO", log_informants="omit")
    async with api_client(create_app(settings, CollectorRegistry())) as client:
        capfd.readouterr()
        await client.post("/v1/events", json=body(unique("u"), "login"))
    [line] = [line for line in lines(capfd.readouterr().err) if line["event"] == "request"]
    assert "informant" not in line and "event_id" in line


async def test_the_hash_is_stable_for_one_key_and_differs_between_keys(
    base_settings: Settings, capfd: pytest.CaptureFixture[str]
) -> None:
    who = unique("u")
    seen = []
    for salt in ("one", "one", "two"):
        settings = replace(base_settings, access_log=True, log_level="INFO", log_salt=salt)
        async with api_client(create_app(settings, CollectorRegistry())) as client:
            capfd.readouterr()
            await client.post("/v1/events", json=body(who, "login"))
        [line] = [line for line in lines(capfd.readouterr().err) if line["event"] == "request"]
        seen.append(line["informant"])
    assert seen[0] == seen[1] != seen[2]


def test_log_settings_come_from_the_environment() -> None:
    settings = load_settings(
        {
            "POINTS_LOG_LEVEL": "warning",
            "POINTS_LOG_FORMAT": "json",
            "POINTS_LOG_INFORMANTS": "omit",
        }
    )
    assert (settings.log_level, settings.log_format, settings.log_informants) == (
        "WARNING",
        "json",
        "omit",
    )
    with pytest.raises(SettingsError, match="POINTS_LOG_INFORMANTS"):
        load_settings({"POINTS_LOG_INFORMANTS": "plain"})
