"""Schemathesis over every operation of the OpenAPI document, on SQLite and PostgreSQL.

Each operation gets FUZZ_EXAMPLES generated requests (5 in `make test`; `make fuzz` runs
many more), valid and invalid ones, plus schemathesis' coverage cases, all sent with the
admin key to the app in process (its lifespan started once per backend: Redis, the
migrations). The document is the one the app serves at /schema/openapi.json (the fixture
checks that the served one is the one the tests were made from).

The checks are schemathesis' defaults, among them: no 5xx (not_a_server_error), every
status code, content type, header and body as documented (status_code_conformance,
content_type_conformance, response_headers_conformance, response_schema_conformance),
schema-violating input refused (negative_data_rejection), a missing key refused
(ignored_auth, missing_required_header), other methods answered 405 with Allow
(unsupported_method). Left out, and why:

- positive_data_acceptance: it wants every schema-valid request accepted, but a valid
  shape can still be refused for what it says, as the contract wants: an `occurred_at`
  more than 5 minutes ahead, a day or month that is not in the calendar, a region code
  of no region, a metric or scope the leaderboards do not keep (422, naming the field).
- allow_header_conformance: Litestar 2's automatic OPTIONS lists the methods of the
  first handler of a path only (litestar-org/litestar#4169, fixed in Litestar 3), so
  OPTIONS on a path with a GET and a PUT says `OPTIONS, PUT`. API v1 has no OPTIONS;
  the 405s' Allow, which a client does see, is checked (unsupported_method).
- negative_data_rejection for POST /v1/events/batch: a batch refuses a bad item in
  place (its own 422 in `results`) and answers 200 for the rest, as documented.

Generation leaves out unknown query parameters (the service ignores them, as Litestar
does) and the security parameters (every request carries the admin key; ignored_auth
probes without it).
"""

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from litestar.testing import AsyncTestClient
from litestar.types import ASGIApp, Receive, Scope, Send
from prometheus_client import CollectorRegistry
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    negative_data_rejection,
    positive_data_acceptance,
)

from points_service.http.app import create_app
from points_service.settings import Settings
from tests.conftest import ADMIN_KEYS, AUTH, ROOT, unique
from tests.http.test_events_api import body

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "5"))


def _document() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as data:
        settings = Settings(
            data_dir=Path(data),
            rules_dir=ROOT / "rules",
            leaderboards_dir=ROOT / "leaderboards",
            log_level="WARNING",
            log_format="json",
            log_salt="fuzz",
            api_keys=ADMIN_KEYS,
        )
        return create_app(settings).openapi_schema.to_schema()


class _Current:
    """The app under test, set by the fixture; schemathesis sends every request (and the
    lifespan) here, the checks' own probes too."""

    app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None, "no app under test"
        await self.app(scope, receive, send)


CURRENT = _Current()
DOCUMENT = _document()
schema = schemathesis.openapi.from_dict(DOCUMENT)
schema.app = CURRENT
schema.config.generation.update(allow_extra_parameters=False, with_security_parameters=False)


@pytest.fixture
def fuzz_app(settings: Settings) -> Iterator[None]:
    CURRENT.app = create_app(settings, CollectorRegistry())
    try:
        with asgi.get_client(CURRENT) as client:  # starts the lifespan
            assert client.get("/schema/openapi.json").json() == DOCUMENT
            yield
    finally:
        asgi.shutdown_lifespans()
        CURRENT.app = None


@schema.parametrize()
@hypothesis_settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation(case: Any, fuzz_app: None) -> None:
    excluded = [positive_data_acceptance, allow_header_conformance]
    if case.operation.path == "/v1/events/batch":
        excluded.append(negative_data_rejection)
    case.call_and_validate(headers=AUTH, excluded_checks=excluded)


# What the fuzzer found, pinned: a NUL in free text (PostgreSQL's text cannot hold one) and
# an institution id no header can carry were 500s; an id or region code with a trailing
# newline passed its pattern.
NUL = "a\x00b"


async def test_nul_in_text_is_a_422_naming_the_field(
    client: AsyncTestClient,  # type: ignore[type-arg]
) -> None:
    who = unique("u")
    refusals = [
        ("POST", "/v1/events", body(who, "browse", event_id=NUL, content_id="c"), "event_id"),
        ("POST", "/v1/events", body(who, "browse", content_id=NUL), "content_id"),
        (
            "POST",
            f"/v1/informants/{who}/redemptions",
            {"redemption_id": NUL, "points": 1, "item": "x"},
            "redemption_id",
        ),
        (
            "POST",
            f"/v1/informants/{who}/redemptions",
            {"redemption_id": unique("r"), "points": 1, "item": NUL},
            "item",
        ),
        ("POST", "/v1/events/x/reversal", {"reason": NUL}, "reason"),
        ("PUT", f"/v1/informants/{who}", {"name": NUL}, "name"),
        ("PUT", f"/v1/informants/{who}", {"unit_name": NUL}, "unit_name"),
        ("PUT", "/v1/institutions/i1", {"name": NUL}, "name"),
        ("PUT", "/v1/institutions/i1", {"name": "n", "contact": NUL}, "contact"),
    ]
    for method, path, sent, field in refusals:
        r = await client.request(method, path, json=sent)
        assert (r.status_code, r.json().get("field")) == (422, field), (path, r.text)
    batch = await client.post("/v1/events/batch", json=[body(who, "login", event_id=NUL)])
    [item] = batch.json()["results"]
    assert (item["status"], item["error"]["field"]) == (422, "event_id")
    r = await client.post("/v1/events/a%00b/reversal", json={})
    assert (r.status_code, r.json()["field"]) == (422, "event_id"), r.text
    r = await client.get("/v1/reports/monthly", params={"institution": "机构", "format": "csv"})
    assert (r.status_code, r.json()["field"]) == (422, "institution"), r.text


async def test_a_trailing_newline_is_no_part_of_an_id(
    client: AsyncTestClient,  # type: ignore[type-arg]
) -> None:
    who = unique("u")
    refusals = [
        ("GET", "/v1/informants/u-%0A/ledger", None, "informant_id"),
        ("GET", "/v1/leaderboards/points/informants/u-%0A", None, "informant_id"),
        ("POST", "/v1/events", body(who + "\n", "login"), "informant_id"),
        ("PUT", f"/v1/informants/{who}", {"province": "640000\n"}, "province"),
        ("PUT", f"/v1/informants/{who}", {"institution_id": "i1\n"}, "institution_id"),
    ]
    for method, path, sent, field in refusals:
        r = await client.request(method, path, json=sent)
        assert (r.status_code, r.json().get("field")) == (422, field), (path, r.text)
