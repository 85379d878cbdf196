"""HMAC request signing for a key that has a signing secret: its event requests carry a
timestamp, a nonce and a signature; a missing, stale, forged or replayed one is a 401
naming the header at fault, and nothing of it is recorded."""

import json
import time
from dataclasses import replace
from pathlib import Path

import msgspec
from prometheus_client import CollectorRegistry

from points_service.adapters.api_keys import digest, load_keys, new_key
from points_service.domain.signing import new_secret, signature, signed_headers
from points_service.http.app import create_app
from points_service.settings import Settings
from tests.conftest import api_client, unique
from tests.http.test_events_api import body
from tests.http.test_import import cli


def test_the_signature_is_the_documented_hmac() -> None:
    # The example of domain/signing.py, as OpenSSL computes it:
    # printf '1796248974\n3f9a1c0b6d2e4f58a7b1\nPOST\n/v1/events\n{}' |
    #   openssl dgst -sha256 -hmac pss_example
    got = signature(
        "pss_example", "1796248974", "3f9a1c0b6d2e4f58a7b1", "post", "/v1/events", b"{}"
    )
    assert got == "500c9a1411dccba09db7512a600bee90be5fd1b5a69f81f5802314124ae9a556"


async def test_a_signing_key_must_sign_its_event_requests(base_settings: Settings) -> None:
    key, secret = new_key(), new_secret()
    entries = [
        {
            "name": "backend",
            "hash": digest(key),
            "scopes": ["events:write", "read"],
            "secret": secret,
        }
    ]
    settings = replace(base_settings, api_keys=json.dumps(entries), signature_window=60)
    async with api_client(create_app(settings, CollectorRegistry()), timeout=60) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        who = unique("u")
        event = msgspec.json.encode(body(who, "login"))

        unsigned = await client.post("/v1/events", content=event)
        assert unsigned.status_code == 401
        assert (unsigned.json()["code"], unsigned.json()["field"]) == (
            "bad_signature",
            "X-PS-Timestamp",
        )
        signed = signed_headers(secret, "POST", "/v1/events", event)
        first = await client.post("/v1/events", content=event, headers=signed)
        assert (first.status_code, first.json()["points"]) == (200, 1), first.text
        # The same request captured and sent again: refused, though its event is known.
        replayed = await client.post("/v1/events", content=event, headers=signed)
        assert (replayed.status_code, replayed.json()["field"]) == (401, "X-PS-Nonce")
        # A retry signed anew is answered (it is the same event: a replay, no new credit).
        retry = signed_headers(secret, "POST", "/v1/events", event)
        again = await client.post("/v1/events", content=event, headers=retry)
        assert (again.status_code, again.json()["replayed"]) == (200, True)

        other = msgspec.json.encode(body(who, "sign_in"))
        stale = signed_headers(secret, "POST", "/v1/events", other, now=time.time() - 120)
        late = await client.post("/v1/events", content=other, headers=stale)
        assert (late.status_code, late.json()["field"]) == (401, "X-PS-Timestamp")
        forged = signed_headers(secret, "POST", "/v1/events", event)  # signed for another body
        wrong = await client.post("/v1/events", content=other, headers=forged)
        assert (wrong.status_code, wrong.json()["field"]) == (401, "X-PS-Signature")
        elsewhere = signed_headers("pss_" + "x" * 43, "POST", "/v1/events", other)
        unknown = await client.post("/v1/events", content=other, headers=elsewhere)
        assert (unknown.status_code, unknown.json()["field"]) == (401, "X-PS-Signature")

        batch = msgspec.json.encode([json.loads(other)])
        signed_batch = signed_headers(secret, "POST", "/v1/events/batch", batch)
        answered = await client.post("/v1/events/batch", content=batch, headers=signed_batch)
        assert answered.json()["accepted"] == 1, answered.text
        # Reads need no signature.
        points = await client.get(f"/v1/informants/{who}/points")
        assert points.json()["balance"] == 1 + 5
        ledger = (await client.get(f"/v1/informants/{who}/ledger")).json()["entries"]
        assert len(ledger) == 2  # the login and the batch's sign-in; no refused one


def test_keys_create_sign_makes_a_secret(base_settings: Settings, tmp_path: Path) -> None:
    keys = tmp_path / "keys.toml"
    settings = replace(base_settings, api_keys=None, api_keys_file=keys)
    made = cli(settings, "keys", "create", "backend", "--scope", "events:write", "--sign")
    assert made.returncode == 0, made.stderr
    key, secret = made.stdout.split()
    [loaded] = load_keys(keys, None)
    assert (loaded.digest, loaded.secret) == (digest(key), secret)
    assert secret.startswith("pss_") and "signing secret" in made.stderr
    assert keys.stat().st_mode & 0o077 == 0  # readable by the service's user only
    listed = cli(settings, "keys", "list")
    assert listed.stdout.strip() == "backend\tevents:write\tsigned"
