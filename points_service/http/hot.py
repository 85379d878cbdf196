"""The hot routes, kept lean: `POST /v1/events`, and the leaderboard reads
(`GET /v1/leaderboards/...`).

Each is a Litestar ASGI route handler, so that the app documents and serves it like any
other route. What the handler skips is the per-request machinery of a typed handler: the
signature model, keyword-argument resolution, and building a `Response` and its ASGI
counterpart. On this path that machinery cost about a fifth of the worker's time per
event (bench/RESULTS.md), more than decoding the event and planning it together.

The app's outermost middleware (`app._observe`) goes one step further on the paths
`hot_answer` knows for sure: it answers them itself, after the request id and the API
key check, past Litestar's router and its exception middleware, and maps a refusal
through the app's own exception handlers (`refusal`), so the answer is the same byte for
byte. A leaderboard read carries an informant id in its path, so the router's cache of
resolved paths never knew it: the router cost ~8 % of a rank read's instructions (737k
-> 672k per request with the two changes made beside it, callgrind; bench/RESULTS.md).
Answering there rather than from a middleware of its own, inside the key check's,
saved another ~1 % (612k -> 604k on the callgrind client of 2026-12-06). Any other
path, or one Litestar would first normalize, goes through Litestar as before.

The OpenAPI operation is the one Litestar renders for `documented_record_event`, a
typed handler with the same contract that is never served (app.py copies it in).
"""

import asyncio
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Mapping
from functools import partial
from typing import Any
from urllib.parse import parse_qsl, unquote

import msgspec
from litestar import Request, Response, asgi, post
from litestar.params import RawBody
from litestar.types import ExceptionHandlersMap, Receive, Scope, Send

from points_service.adapters.logging import LOG_FIELDS, informant_field
from points_service.domain.events import ID_PATTERN, Event
from points_service.http.convert import board_out, event_result, ranks_out, standing_out
from points_service.http.errors import ApiError, decode_body
from points_service.http.openapi import refusals, with_body
from points_service.http.schemas import ErrorOut, EventResult, event_decoder
from points_service.runtime import Runtime
from points_service.services.errors import Conflict, InvalidInput, TooMany
from points_service.services.leaderboards import MAX_AROUND, MAX_LIMIT

PATH = "/v1/events"

_encoder = msgspec.json.Encoder()
_JSON = (b"content-type", b"application/json")
INFORMANT_ID = re.compile(ID_PATTERN)


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


Headers = tuple[tuple[bytes, bytes], ...]
Reply = tuple[int, bytes, Headers]


async def event_reply(scope: Scope, receive: Receive) -> Reply:
    """POST /v1/events: the answer, or the exception that refuses the request."""
    scope["path_template"] = PATH
    if scope["method"] != "POST":  # type: ignore[typeddict-item]
        error = ErrorOut(405, "method_not_allowed", f"{PATH} takes POST only")
        return 405, _encoder.encode(error), ((b"allow", b"POST"),)
    runtime: Runtime = scope["litestar_app"].state["runtime"]
    try:
        # One event is a few hundred bytes; its attributes have room, a file does not.
        body = await read_body(receive, runtime.settings.max_event_bytes)
        event = decode_body(event_decoder, body)
        fields: dict[str, Any] | None = scope.get(LOG_FIELDS)  # type: ignore[assignment]
        if fields is not None:
            fields["event_id"] = event.event_id
            fields.update(informant_field(event.informant_id))
        credited = await runtime.credits.record(event)
    except (ApiError, InvalidInput, Conflict, TooMany) as exc:
        runtime.metrics.event_refused(getattr(exc, "code", "invalid"))
        raise
    return 200, _encoder.encode(event_result(credited)), ()


async def record_event(scope: Scope, receive: Receive, send: Send) -> None:
    await send_json(send, *await event_reply(scope, receive))


record_event_route = asgi(PATH, copy_scope=False, name="record_event")(record_event)


@post(
    PATH,
    status_code=200,
    summary="Record one event",
    operation_class=with_body(Event),
    responses=refusals({409: "The event_id was used for a different event (`event_id_reused`)"}),
)
async def documented_record_event(body: RawBody) -> EventResult:
    """The typed twin of `record_event`, for the OpenAPI document only: never served."""
    raise NotImplementedError


# --- reads on the hot path: the leaderboards --------------------------------------------

Query = dict[str, str]


def _int(query: Query, name: str, default: int, low: int, high: int) -> int:
    text = query.get(name)
    if text is None:
        return default
    if not text.lstrip("-").isdigit() or not low <= int(text) <= high:
        raise ApiError(422, "invalid", f"{name} must be a whole number from {low} to {high}", name)
    return int(text)


def _informant(path: Mapping[str, Any]) -> str:
    informant_id = str(path["informant_id"])
    if not INFORMANT_ID.match(informant_id):
        raise ApiError(422, "invalid", "not an informant id", "informant_id")
    return informant_id


async def _top(rt: Runtime, path: Mapping[str, Any], q: Query) -> msgspec.Struct:
    limit = _int(q, "limit", 100, 1, MAX_LIMIT)
    page = await rt.leaderboards.top(
        str(path["metric"]), q.get("scope", "all"), q.get("period"), limit, q.get("cursor")
    )
    return board_out(page)


async def _standing(rt: Runtime, path: Mapping[str, Any], q: Query) -> msgspec.Struct:
    around = _int(q, "around", 5, 0, MAX_AROUND)
    standing = await rt.leaderboards.standing(
        str(path["metric"]), q.get("scope", "all"), q.get("period"), _informant(path), around
    )
    return standing_out(standing)


async def _ranks(rt: Runtime, path: Mapping[str, Any], q: Query) -> msgspec.Struct:
    if "ids" not in q:
        raise ApiError(422, "invalid", "ids is required: informant ids, comma-separated", "ids")
    wanted = [i for i in q["ids"].split(",") if i]
    odd = next((i for i in wanted if not INFORMANT_ID.match(i)), None)
    if odd is not None:
        raise ApiError(422, "invalid", f"{odd[:80]!r} is not an informant id", "ids")
    ranks = await rt.leaderboards.ranks(
        str(path["metric"]), q.get("scope", "all"), q.get("period"), wanted
    )
    return ranks_out(ranks)


def _query(text: str) -> Query:
    """The query's parameters as parse_qsl reads them (blank values kept, the last of a
    repeated name wins); a plain one (no escapes, no '+', no ';') without its cost."""
    if "%" in text or "+" in text or ";" in text:
        return dict(parse_qsl(text, keep_blank_values=True))
    query = {}
    for pair in text.split("&"):
        if pair:
            name, _, value = pair.partition("=")
            query[name] = value
    return query


_BOARDS = "/v1/leaderboards"
BoardAnswer = Callable[[Runtime, Mapping[str, Any], Query], Awaitable[msgspec.Struct]]
_BOARD_PATHS: tuple[tuple[re.Pattern[str], str, BoardAnswer, bool], ...] = (
    # the rest of the path after the mount, its template (a metrics label), the answer,
    # whether the encoded answer may be served again for the page TTL (the top of a
    # board is the same for every reader; a standing or a set of ranks is not)
    (re.compile(r"^/(?P<metric>[^/]+)/?$"), _BOARDS + "/{metric}", _top, True),
    (re.compile(r"^/(?P<metric>[^/]+)/ranks/?$"), _BOARDS + "/{metric}/ranks", _ranks, False),
    (
        re.compile(r"^/(?P<metric>[^/]+)/informants/(?P<informant_id>[^/]+)/?$"),
        _BOARDS + "/{metric}/informants/{informant_id}",
        _standing,
        False,
    ),
)


async def board_reply(scope: Scope, receive: Receive) -> Reply:
    """GET /v1/leaderboards/{metric}[/ranks | /informants/{id}], mounted as one ASGI
    handler (Litestar's router does not give an ASGI handler its path parameters): the
    rest of the path and the query are parsed here (the last of a repeated parameter
    wins, unknown ones are ignored, as Litestar does). `scope["path"]` is the rest of
    the path after the mount."""
    rest = unquote(scope["path"])
    found = next(
        ((m, template, answer, cached) for p, template, answer, cached in _BOARD_PATHS
         if (m := p.match(rest))),
        None,
    )  # fmt: skip
    if found is None:
        error = ErrorOut(404, "not_found", f"no such leaderboard path: {_BOARDS}{rest}")
        return 404, _encoder.encode(error), ()
    match, template, answer, cached = found
    scope["path_template"] = template
    if scope["method"] not in ("GET", "HEAD"):  # type: ignore[typeddict-item]
        error = ErrorOut(405, "method_not_allowed", f"{template} takes GET only")
        return 405, _encoder.encode(error), ((b"allow", b"GET"),)
    raw_query = scope["query_string"]
    state = scope["litestar_app"].state  # by key: by attribute, State raises and catches
    pages: PageCache = state["page_cache"]
    if not cached or pages.ttl <= 0:
        return 200, await _encoded(answer, state["runtime"], match, raw_query), ()
    key = (rest, raw_query)
    body = pages.get(key)
    if body is None:
        body = await pages.build(key, partial(_encoded, answer, state["runtime"], match, raw_query))
    return 200, body, ()


async def _encoded(
    answer: BoardAnswer, runtime: Runtime, match: re.Match[str], raw_query: bytes
) -> bytes:
    query = _query(raw_query.decode("latin-1"))
    return _encoder.encode(await answer(runtime, match.groupdict(), query))


async def leaderboards(scope: Scope, receive: Receive, send: Send) -> None:
    await send_json(send, *await board_reply(scope, receive))


class PageCache:
    """Encoded top-of-board pages, served again for `ttl` seconds (per worker).

    A page is built once for all the requests that miss it together: when it expires
    under load, the requests that arrive while one of them reads and encodes it wait for
    that build instead of each starting their own. (Each did: 32 requests at once after
    an expiry built the page 20-25 times; under wrk at half rate the cached page's p99
    went from 7.56 / 3.90 ms to 2.91 / 2.02 ms in two alternated pairs of runs,
    bench/RESULTS.md.) A build that fails or is cancelled leaves each waiting request to
    build the page on its own, so every request gets its own answer or its own error.
    `built(how)` counts the pages not served from the cache: "built", or "shared"
    (waited for another request's build)."""

    def __init__(
        self, ttl: float, size: int = 10_000, built: Callable[[str], None] | None = None
    ) -> None:
        self.ttl = ttl
        self._size = size
        self._pages: OrderedDict[Hashable, tuple[float, bytes]] = OrderedDict()
        self._building: dict[Hashable, asyncio.Future[bytes | None]] = {}
        self._built = built or (lambda how: None)

    def get(self, key: Hashable) -> bytes | None:
        found = self._pages.get(key)
        if found is None or found[0] < time.monotonic():
            return None
        return found[1]

    def put(self, key: Hashable, body: bytes) -> None:
        self._pages[key] = (time.monotonic() + self.ttl, body)
        self._pages.move_to_end(key)
        while len(self._pages) > self._size:
            self._pages.popitem(last=False)

    async def build(self, key: Hashable, make: Callable[[], Awaitable[bytes]]) -> bytes:
        """The page `make` builds, kept for `ttl`; or, while another request is building
        it, that request's page."""
        pending = self._building.get(key)
        if pending is not None:
            # shielded: a waiter that is cancelled must not cancel the others' wait
            shared = await asyncio.shield(pending)
            if shared is not None:
                self._built("shared")
                return shared
            body = await make()  # the build failed: this request tries on its own
        else:
            pending = self._building[key] = asyncio.get_running_loop().create_future()
            built = None
            try:
                body = built = await make()
            finally:
                del self._building[key]
                pending.set_result(built)
        self.put(key, body)
        self._built("built")
        return body


BOARD_ROUTES = [asgi(_BOARDS, is_mount=True, copy_scope=False, name="leaderboards")(leaderboards)]


def refusal(
    handlers: ExceptionHandlersMap, scope: Scope, receive: Receive, exc: Exception
) -> Reply:
    """What the app's exception handlers answer to `exc` (called in the except block, so
    that an unexpected error is logged with its traceback). `handlers`: every one keyed
    by an exception class, `Exception` among them."""
    handler = next(handlers[k] for k in type(exc).__mro__ if k in handlers)
    response: Response[bytes] = handler(Request(scope, receive), exc)
    assert isinstance(response.content, bytes), "the app's handlers answer encoded JSON"
    headers = tuple((k.lower().encode(), v.encode()) for k, v in response.headers.items())
    return response.status_code or 500, response.content, headers


Answer = Callable[[Scope, Receive], Awaitable[Reply]]
_BOARDS_SLASH = _BOARDS + "/"


def hot_answer(scope: Any) -> Answer | None:
    """The answer to `POST /v1/events` or a leaderboard read, past Litestar's router
    (see the module's docstring), or None: Litestar routes the request. A path
    Litestar would first normalize (a doubled slash), or a request with a `root_path`,
    goes to Litestar."""
    if scope.get("root_path"):
        return None
    path: str = scope["path"]
    if path == PATH:
        return event_reply
    if path.startswith(_BOARDS_SLASH) and "//" not in path:
        return _mounted_board_reply
    return None


async def _mounted_board_reply(scope: Scope, receive: Receive) -> Reply:
    """`board_reply` with the scope as Litestar's mount hands it on."""
    scope["path_template"] = _BOARDS  # until the answer knows its route
    scope["path"] = scope["path"][len(_BOARDS) :]
    return await board_reply(scope, receive)
