"""API keys and scopes: every route of the OpenAPI document by every kind of key, and a
fresh data directory that makes its own admin key."""

import asyncio
import json
import re
import stat
import time
from dataclasses import replace
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry

from points_service.adapters.api_keys import digest, new_key
from points_service.http.app import create_app
from points_service.settings import Settings
from tests.conftest import api_client
from tests.http.server import ServerProcess
from tests.http.test_import import cli

# The contract, written out here rather than read from the service: which scope each
# route needs. A route the service adds without an entry here fails the matrix.
NEEDS = {
    ("POST", "/v1/events"): "events:write",
    ("POST", "/v1/events/batch"): "events:write",
    ("POST", "/v1/informants/{informant_id}/redemptions"): "events:write",
    ("POST", "/v1/informants/{informant_id}/draws"): "events:write",
    ("GET", "/v1/draws/{draw}"): "read",
    ("GET", "/v1/draws/{draw}/results"): "read",
    ("GET", "/v1/informants/{informant_id}"): "read",
    ("GET", "/v1/informants/{informant_id}/points"): "read",
    ("GET", "/v1/informants/{informant_id}/ledger"): "read",
    ("GET", "/v1/informants/{informant_id}/today"): "read",
    ("GET", "/v1/rules"): "read",
    ("GET", "/v1/leaderboards/{metric}"): "read",
    ("GET", "/v1/leaderboards/{metric}/informants/{informant_id}"): "read",
    ("GET", "/v1/leaderboards/{metric}/ranks"): "read",
    ("GET", "/v1/institutions/{institution_id}"): "read",
    ("GET", "/v1/institutions/{institution_id}/members"): "institution",
    ("PUT", "/v1/informants/{informant_id}"): "admin",
    ("PUT", "/v1/institutions/{institution_id}"): "admin",
    ("POST", "/v1/events/{event_id}/reversal"): "admin",
    ("GET", "/v1/awards/{award}/nominations"): "admin",
    ("GET", "/v1/reports/monthly"): "admin",
    ("GET", "/v1/admin/rules"): "admin",
    ("POST", "/v1/admin/rules/reload"): "admin",
    ("POST", "/v1/admin/leaderboards/rebuild"): "admin",
    ("POST", "/v1/admin/leaderboards/reconcile"): "admin",
    ("GET", "/v1/admin/flags"): "admin",
    ("GET", "/v1/admin/flags/{flag_id}"): "admin",
    ("POST", "/v1/admin/flags/{flag_id}/clear"): "admin",
    ("POST", "/v1/admin/flags/{flag_id}/reversal"): "admin",
    ("POST", "/v1/admin/abuse/scan"): "admin",
    ("GET", "/health/live"): "public",
    ("GET", "/health/ready"): "public",
}
SAMPLE = {
    "informant_id": "u1",
    "event_id": "e1",
    "metric": "points",
    "award": "top_ten",
    "flag_id": "1",
    "draw": "winter-2026",
}
KINDS = ["events:write", "read", "admin", "institution:inst-a", "institution:inst-b"]


def _allowed(needed: str, kind: str, institution: str) -> bool:
    if needed == "public" or kind == "admin":
        return True
    if needed == "institution":
        return kind == f"institution:{institution}"
    return kind == needed


async def test_every_route_against_every_scope(base_settings: Settings) -> None:
    keys = {kind: new_key() for kind in KINDS}
    entries = [
        {"name": f"k{n}", "hash": digest(key), "scopes": [kind]}
        for n, (kind, key) in enumerate(keys.items())
    ]
    settings = replace(base_settings, api_keys=json.dumps(entries))
    app = create_app(settings, CollectorRegistry())
    async with api_client(app, timeout=60) as client:
        client.headers.pop("Authorization")
        document = (await client.get("/schema/openapi.json")).json()  # public
        routes = {
            (method.upper(), path)
            for path, item in document["paths"].items()
            for method in item
            if method in {"get", "post", "put", "delete", "patch"}
        }
        assert routes == set(NEEDS), routes ^ set(NEEDS)
        checked = 0
        for (method, template), needed in sorted(NEEDS.items()):
            for institution in ("inst-a", "inst-b"):
                path = template.replace("{institution_id}", institution)
                path = re.sub(r"\{(\w+)\}", lambda m: SAMPLE[m.group(1)], path)
                callers: list[tuple[str, dict[str, str]]] = [
                    ("none", {}),
                    ("unknown", {"Authorization": f"Bearer {new_key()}"}),
                ]
                callers += [(kind, {"X-API-Key": key}) for kind, key in keys.items()]
                for kind, headers in callers:
                    r = await client.request(method, path, headers=headers, json={})
                    if kind in ("none", "unknown"):
                        expected_refusal = 401 if needed != "public" else None
                    else:
                        expected_refusal = None if _allowed(needed, kind, institution) else 403
                    if expected_refusal is None:
                        assert r.status_code not in (401, 403), (method, path, kind, r.text)
                        assert r.status_code < 500, (method, path, kind, r.text)
                    else:
                        assert r.status_code == expected_refusal, (method, path, kind, r.text)
                        assert r.json()["field"] == "Authorization"
                        if expected_refusal == 401:
                            assert r.headers["www-authenticate"].startswith("Bearer")
                    checked += 1
        assert checked == len(NEEDS) * 2 * (2 + len(KINDS))
        # Metrics are public too (for the scraper); the bearer form works like X-API-Key.
        assert (await client.get("/metrics")).status_code == 200
        bearer = await client.get(
            "/v1/informants/u1/points", headers={"Authorization": f"bearer {keys['read']}"}
        )
        assert bearer.status_code == 200


def test_a_fresh_data_dir_makes_its_own_admin_key(base_settings: Settings, tmp_path: Path) -> None:
    settings = replace(base_settings, api_keys=None, data_dir=tmp_path / "fresh")
    log = tmp_path / "server.log"
    server = ServerProcess(settings, log)
    server.start()
    try:
        key_file = settings.data_dir / "admin.key"
        assert f"an admin key was made: it is in {key_file}" in log.read_text()
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        key = key_file.read_text().strip()
        stored = settings.keys_file.read_text()
        assert key not in stored and digest(key) in stored
        with httpx.Client(base_url=server.url, timeout=10) as http:
            assert http.get("/v1/admin/rules").status_code == 401
            answer = http.get("/v1/admin/rules", headers={"Authorization": f"Bearer {key}"})
            assert answer.status_code == 200, answer.text
    finally:
        server.stop()
    # A second start keeps the key it made.
    server.start()
    server.stop()
    assert key_file.read_text().strip() == key
    assert log.read_text().count("an admin key was made") == 1


def test_keys_are_made_and_listed_by_the_command(base_settings: Settings, tmp_path: Path) -> None:
    settings = replace(base_settings, api_keys=None, api_keys_file=tmp_path / "keys.toml")
    made = cli(settings, "keys", "create", "app-backend", "--scope", "events:write")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("ps_") and digest(key) in (tmp_path / "keys.toml").read_text()
    listed = cli(settings, "keys", "list")
    assert listed.stdout.strip() == "app-backend\tevents:write"
    wrong = cli(settings, "keys", "create", "x", "--scope", "write-everything")
    assert wrong.returncode == 2 and "unknown scope 'write-everything'" in wrong.stderr
    again = cli(settings, "keys", "create", "app-backend", "--scope", "read")
    assert again.returncode == 2 and "used already" in again.stderr


async def test_a_key_past_its_rate_gets_429_with_retry_after(base_settings: Settings) -> None:
    hasty, calm = new_key(), new_key()
    entries = [
        {"name": "hasty", "hash": digest(hasty), "scopes": ["read"]},
        {"name": "calm", "hash": digest(calm), "scopes": ["read"]},
    ]
    settings = replace(base_settings, api_keys=json.dumps(entries), rate_per_key=5)
    app = create_app(settings, CollectorRegistry())
    async with api_client(app, timeout=60) as client:
        client.headers.pop("Authorization")
        started = time.monotonic()
        answers = [
            await client.get("/v1/informants/u1/points", headers={"X-API-Key": hasty})
            for _ in range(20)
        ]
        windows = int(time.monotonic() - started) + 2  # the seconds the burst touched
        statuses = [a.status_code for a in answers]
        assert set(statuses) == {200, 429}, statuses
        # Each worker sends its count to Redis as it goes (a tenth of the limit at a
        # time): a key may pass the limit by what is on its way, here one request.
        assert statuses.count(200) <= 5 * windows + 1
        refused = next(a for a in answers if a.status_code == 429)
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["code"] == "rate_limited"
        # Another key has a budget of its own, and the hasty one gets a new one later.
        calm_answer = await client.get("/v1/informants/u1/points", headers={"X-API-Key": calm})
        assert calm_answer.status_code == 200
        await asyncio.sleep(1.1)
        again = await client.get("/v1/informants/u1/points", headers={"X-API-Key": hasty})
        assert again.status_code == 200
