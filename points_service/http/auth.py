"""ASGI middleware: every request but the public ones carries an API key whose scopes
cover the route (`domain/access.py`). No key, or an unknown one: 401; a key without the
scope: 403. The key travels as `Authorization: Bearer <key>` or `X-API-Key: <key>`.
A key with a signing secret also signs its `events:write` requests (domain/signing.py):
a missing, stale, wrong or replayed signature is a 401 naming the header at fault."""

import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import msgspec
from litestar.types import ASGIApp, Receive, Send

from points_service.adapters.api_keys import digest
from points_service.adapters.logging import LOG_FIELDS
from points_service.domain.access import CONSOLE, EVENTS_WRITE, PUBLIC, ApiKey, needed_scope
from points_service.domain.signing import (
    NONCE,
    SIGNATURE,
    TIMESTAMP,
    SignatureRefused,
    check_signature,
)
from points_service.http.errors import ApiError
from points_service.http.hot import Reply, read_body, send_json
from points_service.http.schemas import ErrorOut

_encoder = msgspec.json.Encoder()
KEY_NAME = "points.key_name"  # the scope entry that names the request's key
_BEARER = b"bearer "


def _presented(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    for name, value in headers:
        if name == b"authorization":
            if value[:7].lower() == _BEARER:
                return value[7:].strip()
            return None
        if name == b"x-api-key":
            return value.strip()
    return None


class Limits(Protocol):
    def admit(self, key_name: str) -> float:
        """0 when the key may make this request, else seconds until it may again."""
        ...

    async def first_use(self, key_name: str, nonce: str, seconds: int) -> bool: ...


class Refusal(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        retry_after: int | None = None,
        field: str = "Authorization",
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.retry_after, self.field = retry_after, field

    def reply(self) -> Reply:
        headers: list[tuple[bytes, bytes]] = []
        if self.status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="points-service"'))
        if self.retry_after is not None:
            headers.append((b"retry-after", str(self.retry_after).encode()))
        out = ErrorOut(self.status, self.code, self.message, self.field, None, self.retry_after)
        return self.status, _encoder.encode(out), tuple(headers)


_SIGNING_HEADERS = {TIMESTAMP.encode(), NONCE.encode(), SIGNATURE.encode()}


def _replaying(body: bytes, receive: Receive) -> Receive:
    """The body read already, handed on as the request's one message."""
    given = False

    async def again() -> Any:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return again


async def _verify(
    scope: Any, receive: Receive, key: ApiKey, limiter: Limits | None, window: int, most: int
) -> Receive:
    """The signed request's receive (its body read and checked), or SignatureRefused."""
    assert key.secret is not None
    headers = {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in scope["headers"]
        if name in _SIGNING_HEADERS
    }
    body = await read_body(receive, most)
    query = scope.get("query_string", b"")
    target = scope["path"] + ("?" + query.decode("latin-1") if query else "")
    nonce = check_signature(key.secret, headers, scope["method"], target, body, time.time(), window)
    if limiter is None or not await limiter.first_use(key.name, nonce, 2 * window):
        raise SignatureRefused("X-PS-Nonce", "this nonce was used already: sign the retry anew")
    return _replaying(body, receive)


class Guard:
    """The API key check: `admit` for one request, or the whole check as ASGI middleware
    (`guard(inner)`). `limits()` is the rate limiter once the app has started (None
    before); `per_key` requests a second per key (0: none); `signature_window`: seconds a
    signed request's timestamp may be off the service's clock."""

    def __init__(
        self,
        keys: Iterable[ApiKey],
        limits: Callable[[], Limits | None],
        per_key: int,
        *,
        signature_window: int = 300,
        max_body: int = 4 * 1024 * 1024,
    ) -> None:
        self._by_digest: Mapping[str, ApiKey] = {k.digest: k for k in keys}
        # Keys presented before, to their key: no hash per request (known keys only, so
        # unknown ones cannot grow it; the keys are fixed for the app's life).
        self._known: dict[bytes, ApiKey] = {}
        self._limits = limits
        self._per_key = per_key
        self._window = signature_window
        self._max_body = max_body

    async def admit(self, scope: Any, receive: Receive) -> Receive:
        """The receive to serve the request with (a signed request's body is read and
        checked here), or a Refusal. A public route, or the console's, passes."""
        needed = needed_scope(scope["method"], scope["path"])
        if needed in (PUBLIC, CONSOLE):
            return receive
        presented = _presented(scope["headers"])
        if presented is None:
            raise Refusal(401, "unauthorized", "an API key is required")
        key = self._known.get(presented)
        if key is None:
            key = self._by_digest.get(digest(presented))
            if key is None:
                raise Refusal(401, "unauthorized", "the API key is not known")
            if len(self._known) < 1_000:
                self._known[presented] = key
        if not key.allows(needed):
            raise Refusal(403, "forbidden", f"the key {key.name!r} lacks the scope {needed!r}")
        scope[KEY_NAME] = key.name  # who did it, for what an admin changes
        fields = scope.get(LOG_FIELDS)
        if fields is not None:  # the request's summary line names the key
            fields["key"] = key.name
        limiter = self._limits()
        per_key = self._per_key
        wait = limiter.admit(key.name) if limiter is not None and per_key else 0.0
        if wait:
            raise Refusal(
                429,
                "rate_limited",
                f"the key {key.name!r} made more than {per_key:,} requests this second",
                retry_after=max(1, math.ceil(wait)),
            )
        if key.secret is None or needed != EVENTS_WRITE:
            return receive
        try:
            return await _verify(scope, receive, key, limiter, self._window, self._max_body)
        except SignatureRefused as refused:
            raise Refusal(401, "bad_signature", refused.message, field=refused.field) from None
        except ApiError as error:  # the body too large, or the client gone
            raise Refusal(error.status, error.code, error.detail, field="body") from None

    def __call__(self, inner: ASGIApp) -> ASGIApp:
        async def handle(scope: Any, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                try:
                    receive = await self.admit(scope, receive)
                except Refusal as refusal:
                    await send_json(send, *refusal.reply())
                    return
            await inner(scope, receive, send)

        return handle
