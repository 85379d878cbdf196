"""Admin routes of the anti-abuse flags: list and read them, clear one, reverse the
credits of one's window, and scan now (domain/abuse.py, services/abuse.py)."""

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, get, post
from litestar.params import PathParameter, QueryParameter, RawBody

from points_service.domain.abuse import Flag
from points_service.domain.events import ID_PATTERN
from points_service.http.auth import KEY_NAME
from points_service.http.errors import decode_body
from points_service.http.openapi import refusals, with_body
from points_service.runtime import Runtime

FlagPath = Annotated[int, PathParameter(ge=1, le=2**62)]


class FlagOut(msgspec.Struct):
    flag_id: int
    informant_id: str
    kind: str
    subject: str  # the share id or viewer id the flag is about ("" for all events)
    window_start: datetime
    window_end: datetime
    evidence: dict[str, Any]
    status: str  # open | cleared | reversed
    detected_at: datetime
    resolved_at: datetime | None
    resolved_by: str | None
    note: str | None


class FlagsOut(msgspec.Struct):
    flags: list[FlagOut]
    next_cursor: str | None


class FlagNoteIn(msgspec.Struct, forbid_unknown_fields=True):
    note: Annotated[str, msgspec.Meta(max_length=512)] | None = None


class WindowReversedOut(msgspec.Struct):
    flag: FlagOut
    reversed_events: int
    points: int  # taken back now
    already_reversed: int


class ScanIn(msgspec.Struct, forbid_unknown_fields=True):
    hours: Annotated[int, msgspec.Meta(ge=1, le=168)] | None = None  # none: since the last


class ScanOut(msgspec.Struct):
    since: datetime
    until: datetime
    events: int
    found: dict[str, int]
    new_flags: dict[str, int]
    widened: int
    seconds: float


AnyRequest = Request[Any, Any, Any]
_note = msgspec.json.Decoder(FlagNoteIn)
_scan = msgspec.json.Decoder(ScanIn)


def _rt(request: AnyRequest) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _who(request: AnyRequest) -> str | None:
    name = request.scope.get(KEY_NAME)
    return name if isinstance(name, str) else None


def flag_out(f: Flag) -> FlagOut:
    return FlagOut(
        f.flag_id,
        f.informant_id,
        f.kind,
        f.subject,
        f.start,
        f.end,
        dict(f.evidence),
        f.status,
        f.detected_at,
        f.resolved_at,
        f.resolved_by,
        f.note,
    )


@get("/v1/admin/flags", summary="Anti-abuse flags, oldest first")
async def list_flags(
    request: AnyRequest,
    status: Annotated[Literal["open", "cleared", "reversed"] | None, QueryParameter()] = None,
    informant_id: Annotated[str | None, QueryParameter(pattern=ID_PATTERN)] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, QueryParameter(pattern=r"^[0-9]{1,18}$")] = None,
) -> FlagsOut:
    after = int(cursor) if cursor is not None else None
    flags = await _rt(request).abuse.flags(status, informant_id, after, limit)
    more = len(flags) == limit
    return FlagsOut([flag_out(f) for f in flags], str(flags[-1].flag_id) if more else None)


@get(
    "/v1/admin/flags/{flag_id:int}",
    summary="One anti-abuse flag",
    responses=refusals({404: "No such flag"}),
)
async def get_flag(request: AnyRequest, flag_id: FlagPath) -> FlagOut:
    return flag_out(await _rt(request).abuse.flag(flag_id))


@post(
    "/v1/admin/flags/{flag_id:int}/clear",
    status_code=200,
    summary="Clear a flag: a false alarm; the informant may be nominated again",
    operation_class=with_body(FlagNoteIn, required=False),
    responses=refusals({404: "No such flag"}),
)
async def clear_flag(request: AnyRequest, flag_id: FlagPath, body: RawBody) -> FlagOut:
    data = decode_body(_note, body or b"{}")
    flag = await _rt(request).abuse.clear(flag_id, _who(request), data.note)
    return flag_out(flag)


@post(
    "/v1/admin/flags/{flag_id:int}/reversal",
    status_code=200,
    summary="Reverse the credits of a flag's window (the events it is about), in one call",
    operation_class=with_body(FlagNoteIn, required=False),
    responses=refusals({404: "No such flag", 409: "The flag was cleared"}),
)
async def reverse_flag(request: AnyRequest, flag_id: FlagPath, body: RawBody) -> WindowReversedOut:
    data = decode_body(_note, body or b"{}")
    done = await _rt(request).abuse.reverse(flag_id, _who(request), data.note)
    return WindowReversedOut(flag_out(done.flag), done.events, done.points, done.already)


@post(
    "/v1/admin/abuse/scan",
    status_code=200,
    summary="Scan the events received for abuse now (the service also does every minute)",
    operation_class=with_body(ScanIn, required=False),
)
async def scan_now(request: AnyRequest, body: RawBody) -> ScanOut:
    data = decode_body(_scan, body or b"{}")
    rt = _rt(request)
    s = await rt.abuse.scan(None if data.hours is None else timedelta(hours=data.hours))
    rt.metrics.abuse_scanned(s.new, s.seconds)
    return ScanOut(s.since, s.until, s.events, s.found, s.new, s.widened, round(s.seconds, 3))


ABUSE_ROUTES = [list_flags, get_flag, clear_flag, reverse_flag, scan_now]
