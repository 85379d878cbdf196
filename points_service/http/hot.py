"""`POST /v1/events` as a Litestar ASGI route handler: the hot path, kept lean.

Litestar still routes the request, runs the middleware (latency histogram, access log)
and maps every exception through the app's exception handlers, exactly as for the other
routes. What the handler skips is the per-request machinery of a typed handler: the
signature model, keyword-argument resolution, and building a `Response` and its ASGI
counterpart. On this path that machinery cost about a fifth of the worker's time per
event (bench/RESULTS.md), more than decoding the event and planning it together.

The OpenAPI operation is the one Litestar renders for `documented_record_event`, a
typed handler with the same contract that is never served (app.py copies it in).
"""

import msgspec
from litestar import asgi, post
from litestar.params import RawBody
from litestar.types import Receive, Scope, Send

from points_service.domain.events import Event
from points_service.http.convert import event_result
from points_service.http.errors import ApiError, decode_error
from points_service.http.openapi import with_body
from points_service.http.schemas import ErrorOut, EventResult, event_decoder
from points_service.runtime import Runtime

PATH = "/v1/events"
# One event is a few hundred bytes; its free-form attributes have room, a file does not.
MAX_EVENT_BYTES = 64 * 1024

_encoder = msgspec.json.Encoder()
_JSON = (b"content-type", b"application/json")


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body, or a 413 once it grows past `limit` bytes."""
    message = await receive()
    body: bytes = message.get("body", b"")  # type: ignore[assignment]
    if not message.get("more_body", False):
        if len(body) > limit:
            raise _too_large(limit)
        return body
    chunks = [body]
    size = len(body)
    while message.get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ApiError(400, "disconnected", "the client went away mid-body")
        chunk: bytes = message.get("body", b"")  # type: ignore[assignment]
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "too_large", f"the body is larger than {limit:,} bytes", "body")


async def send_json(
    send: Send, status: int, payload: bytes, headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [_JSON, (b"content-length", str(len(payload)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": payload, "more_body": False})


async def record_event(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["method"] != "POST":  # type: ignore[typeddict-item]
        error = ErrorOut(405, "method_not_allowed", f"{PATH} takes POST only")
        await send_json(send, 405, _encoder.encode(error), ((b"allow", b"POST"),))
        return
    body = await read_body(receive, MAX_EVENT_BYTES)
    try:
        event = event_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise decode_error(exc) from None
    runtime: Runtime = scope["litestar_app"].state.runtime
    result = event_result(await runtime.credits.record(event))
    await send_json(send, 200, _encoder.encode(result))


record_event_route = asgi(PATH, copy_scope=False, name="record_event")(record_event)


@post(PATH, status_code=200, summary="Record one event", operation_class=with_body(Event))
async def documented_record_event(body: RawBody) -> EventResult:
    """The typed twin of `record_event`, for the OpenAPI document only: never served."""
    raise NotImplementedError
