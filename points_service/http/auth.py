"""ASGI middleware: every request but the public ones carries an API key whose scopes
cover the route (`domain/access.py`). No key, or an unknown one: 401; a key without the
scope: 403. The key travels as `Authorization: Bearer <key>` or `X-API-Key: <key>`."""

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import msgspec
from litestar.types import ASGIApp, Receive, Send

from points_service.adapters.api_keys import digest
from points_service.adapters.logging import LOG_FIELDS
from points_service.domain.access import PUBLIC, ApiKey, needed_scope
from points_service.http.hot import send_json
from points_service.http.schemas import ErrorOut

_encoder = msgspec.json.Encoder()
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


async def _refuse(
    send: Send, status: int, code: str, message: str, retry_after: int | None = None
) -> None:
    headers: list[tuple[bytes, bytes]] = []
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="points-service"'))
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    body = _encoder.encode(ErrorOut(status, code, message, "Authorization"))
    await send_json(send, status, body, tuple(headers))


def authorize(keys: Iterable[ApiKey], limits: Callable[[], Limits | None], per_key: int) -> Any:
    """`limits()` is the rate limiter once the app has started (None before); `per_key`
    requests a second per key (0: none)."""
    by_digest: Mapping[str, ApiKey] = {k.digest: k for k in keys}

    def middleware(inner: ASGIApp) -> ASGIApp:
        async def handle(scope: Any, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await inner(scope, receive, send)
                return
            needed = needed_scope(scope["method"], scope["path"])
            if needed == PUBLIC:
                await inner(scope, receive, send)
                return
            presented = _presented(scope["headers"])
            if presented is None:
                await _refuse(send, 401, "unauthorized", "an API key is required")
                return
            key = by_digest.get(digest(presented))
            if key is None:
                await _refuse(send, 401, "unauthorized", "the API key is not known")
                return
            if not key.allows(needed):
                await _refuse(
                    send, 403, "forbidden", f"the key {key.name!r} lacks the scope {needed!r}"
                )
                return
            fields = scope.get(LOG_FIELDS)
            if fields is not None:  # the request's summary line names the key
                fields["key"] = key.name
            limiter = limits() if per_key else None
            wait = limiter.admit(key.name) if limiter is not None else 0.0
            if wait:
                await _refuse(
                    send,
                    429,
                    "rate_limited",
                    f"the key {key.name!r} made more than {per_key:,} requests this second",
                    retry_after=max(1, math.ceil(wait)),
                )
                return
            await inner(scope, receive, send)

        return handle

    return middleware
