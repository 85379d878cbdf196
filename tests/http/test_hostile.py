"""Hostile input: odd ids, huge numbers, deep or huge JSON, invalid UTF-8, timestamps
without offsets or far away, unknown fields, and ids that try to reach other Redis keys.
Every one gets a clear 4xx naming what is wrong (the field, where one is at fault),
nothing of it is recorded, and the service keeps serving. And no SQL in the package is
built from strings.

Policies: unknown fields are refused (422 naming the field) on every body; a key given
twice in one JSON object takes its last value (as the JSON parser does; the body hash
is of the decoded event, so a retry is judged on what was decoded); an `occurred_at`
more than 5 minutes ahead is refused, one far in the past is stored as `late` and
credits nothing (history comes in through `points-service import`)."""

import ast
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from points_service.adapters.redis_state import key_tag
from points_service.settings import Settings
from tests.conftest import ROOT, redis_client, unique
from tests.http.test_events_api import Client

NOW = datetime.now(UTC).isoformat()


def event(**fields: Any) -> dict[str, Any]:
    return {
        "event_id": unique("e"),
        "informant_id": "victim",
        "action": "login",
        "occurred_at": NOW,
    } | fields


def raw(**fields: Any) -> bytes:
    return json.dumps(event(**fields)).encode()


LOGIN = b'"informant_id":"victim","action":"login","occurred_at":"' + NOW.encode() + b'"'

# (what, body, status, the field named: None when no single field is at fault)
BODIES: list[tuple[str, bytes, int, str | None]] = [
    ("informant id with a brace", raw(informant_id="u}{x"), 422, "informant_id"),
    ("informant id with a space", raw(informant_id="a b"), 422, "informant_id"),
    ("informant id of 65 characters", raw(informant_id="u" * 65), 422, "informant_id"),
    ("empty informant id", raw(informant_id=""), 422, "informant_id"),
    ("informant id in Chinese", raw(informant_id="信息员"), 422, "informant_id"),
    ("informant id with a newline", raw(informant_id="a\nb"), 422, "informant_id"),
    ("event id with NUL", raw(event_id="e\u0000"), 422, "event_id"),
    ("event id of 129 characters", raw(event_id="e" * 129), 422, "event_id"),
    ("content id of 129 characters", raw(action="browse", content_id="c" * 129), 422, "content_id"),
    ("number past 2**53", raw(attributes={"n": 10**40}), 422, "attributes[...]"),
    ("float past double", b'{"event_id":"e-f",' + LOGIN + b',"attributes":{"x":1e400}}', 422,
     "attributes[...]"),
    ("NaN", b'{"event_id":"e-n",' + LOGIN + b',"attributes":{"x":NaN}}', 400, None),
    ("attribute holding an object", raw(attributes={"x": {"y": 1}}), 422, "attributes[...]"),
    ("33 attributes", raw(attributes={f"a{n}": n for n in range(33)}), 422, "attributes"),
    ("attribute text with NUL", raw(attributes={"t": "a\u0000"}), 422, "attributes[...]"),
    ("deep array", b"[" * 100_000, 413, "body"),
    ("deep attributes", b'{"event_id":"e-d",' + LOGIN + b',"attributes":{"x":' + b"[" * 5000
     + b"]" * 5000 + b"}}", 422, "attributes[...]"),
    ("deep object", b'{"a":' * 2000 + b"1" + b"}" * 2000, 422, "a"),
    ("invalid UTF-8", b'{"event_id":"\xff\xfe",' + LOGIN + b"}", 400, None),
    ("truncated JSON", b'{"event_id":"e', 400, None),
    ("a string, not an object", b'"hello"', 422, None),
    ("null", b"null", 422, None),
    ("empty body", b"", 400, None),
    ("no offset on occurred_at", raw(occurred_at="2026-12-02T10:00:00"), 422, "occurred_at"),
    ("occurred_at in year 9999", raw(occurred_at="9999-12-31T23:59:59+00:00"), 422,
     "occurred_at"),
    ("occurred_at as a number", raw(occurred_at=1796248974), 422, "occurred_at"),
    ("unknown field", raw(colour="red"), 422, "colour"),
    ("unknown action", raw(action="mine_bitcoin"), 422, "action"),
    ("dry_run as text", raw(dry_run="yes"), 422, "dry_run"),
]  # fmt: skip


async def test_hostile_events_are_refused_clearly(client: Client) -> None:
    wrong = []
    for what, body, status, field in BODIES:
        paths = [("/v1/events", body)]
        if body.startswith(b"{"):  # as a batch's one item too
            paths.append(("/v1/events/batch", b"[" + body + b"]"))
        for path, sent in paths:
            answer = await client.post(
                path, content=sent, headers={"content-type": "application/json"}
            )
            if path.endswith("batch") and answer.status_code == 200:
                # Refused in place: the item's own status and error.
                [item] = answer.json()["results"]
                got = (item["status"], item["error"].get("field"))
                expected: tuple[int, str | None] = (status, field)
            else:
                error = answer.json()
                got = (answer.status_code, error.get("field"))
                expected = (status, field) if path == "/v1/events" else (got[0], got[1])
                if not (400 <= answer.status_code < 500 and error.get("detail")):
                    wrong.append((what, path, answer.text[:200]))
            if got != expected:
                wrong.append((what, path, got, expected))
    deep = await client.post("/v1/events/batch", content=b"[" * 50_000 + b"]" * 50_000)
    if (deep.status_code, deep.json()["code"]) != (400, "malformed_json"):
        wrong.append(("deep batch", deep.status_code, deep.text[:200]))
    assert not wrong, wrong


PATHS: list[tuple[str, str]] = [
    ("/v1/informants/%7Bx%7D/points", "informant_id"),
    ("/v1/informants/" + "a" * 300 + "/ledger", "informant_id"),
    ("/v1/informants/a%20b", "informant_id"),
    ("/v1/leaderboards/points?limit=99999999999999999999", "limit"),
    ("/v1/leaderboards/points?limit=-5", "limit"),
    ("/v1/leaderboards/points?scope=province:%7B1%7D", "scope"),
    ("/v1/leaderboards/points?scope=institution:a%7Db", "scope"),
    ("/v1/leaderboards/points?period=month:2026-99", "period"),
    ("/v1/leaderboards/points/ranks?ids=" + ",".join(["a"] * 2000), "ids"),
    ("/v1/leaderboards/points/ranks?ids=a,%7Bb%7D", "ids"),
    ("/v1/informants/u1/ledger?limit=-1", "limit"),
    ("/v1/reports/monthly?month=2026-13", "month"),
    ("/v1/awards/top_ten/nominations?year=99999999999999999999", "year"),
    ("/v1/institutions/a%7Db/members", "institution_id"),
]


async def test_hostile_paths_and_queries_are_refused_clearly(client: Client) -> None:
    wrong = []
    for path, field in PATHS:
        answer = await client.get(path)
        if not 400 <= answer.status_code < 500 or answer.json().get("field") != field:
            wrong.append((path[:80], answer.status_code, answer.text[:200]))
    assert not wrong, wrong


async def test_nothing_hostile_was_recorded_and_ids_stay_in_their_keys(
    client: Client, settings: Settings
) -> None:
    """Ids made of everything the patterns allow (and event ids of anything but NUL)
    land only under their own informant's hash tag, in their own namespace."""
    who = "a:b.c@d-e_f"
    hostile = ["x}:s", "{other}:s", "*", "?:[ab]", "e\r\nFLUSHALL\r\n", "ps:{victim}:s", "👀"]
    for event_id in hostile:
        answer = await client.post("/v1/events", json=event(event_id=event_id, informant_id=who))
        assert answer.status_code == 200, answer.text
    refused = await client.post("/v1/events", content=raw(informant_id="victim}x"))
    assert refused.status_code == 422
    redis = redis_client(settings)
    try:
        keys = [k.decode() async for k in redis.scan_iter(match=f"{settings.redis_prefix}:*")]
    finally:
        await redis.aclose()
    tag = key_tag(settings.redis_prefix, who)
    mine = [k for k in keys if k.startswith(tag + ":")]
    assert {k for k in mine if k.startswith(f"{tag}:i:")} == {f"{tag}:i:{e}" for e in hostile}
    # Redis Cluster and the scripts take a key's informant from its first {...}: every
    # key made is the sender's, whatever its event ids hold.
    # (Boards' tags hold '|', API keys' 'key:'; neither can be in an informant id.)
    tags = {k.partition("{")[2].partition("}")[0] for k in keys if "{" in k}
    assert {t for t in tags if "|" not in t and not t.startswith("key:")} == {who}
    ledger = (await client.get(f"/v1/informants/{who}/ledger")).json()["entries"]
    assert len(ledger) == 1  # one login a day; the rest were judged and paid nothing
    assert (await client.get("/health/ready")).status_code == 200


def test_no_sql_is_built_from_strings() -> None:
    """Every statement is SQLAlchemy's expression language or a literal: no f-string,
    concatenation or % formatting goes to execute(), text() or exec_driver_sql()."""
    built = []
    for path in sorted((ROOT / "points_service").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            if name in {"execute", "executemany", "text", "exec_driver_sql", "executescript"}:
                first = node.args[0]
                if isinstance(first, ast.JoinedStr | ast.BinOp) or (
                    isinstance(first, ast.Call) and getattr(first.func, "attr", "") == "format"
                ):
                    built.append(f"{Path(path).relative_to(ROOT)}:{node.lineno}")
    assert not built, built
