"""The event as the app sends it, and the checks that need no state."""

import hashlib
import re
from datetime import datetime, timedelta
from typing import Annotated, Final

import msgspec

from points_service.domain.actions import REQUIRED_FIELDS, Action

# Ids are spliced into Redis key names after the hash tag, so informant ids exclude
# braces (which would move the tag) and whitespace; event ids are only ever values.
# Informant and institution ids: no braces (they would move a Redis hash tag), no '|'
# (it separates a board's parts), no spaces.
# Python's `$` also matches before a final newline: `(?!\n)` keeps "id\n" out, and the
# pattern still reads the same as JSON Schema (ECMA) in the OpenAPI document.
ID_PATTERN: Final = r"^[A-Za-z0-9_.@:\-]{1,64}$(?!\n)"
InformantId = Annotated[str, msgspec.Meta(pattern=ID_PATTERN)]
# Free text holds no NUL: PostgreSQL's text cannot store one (SQLite could, and the same
# request would get two answers), so it is a 422 naming the field.
TEXT_PATTERN: Final = r"^[^\x00]*$"
ClientKey = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=TEXT_PATTERN)]
RefId = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=TEXT_PATTERN)]
AwareDateTime = Annotated[datetime, msgspec.Meta(tz=True)]
# Whole numbers within JSON's safe range (what every client and both databases' JSON keep
# exactly); a larger one is a 422 naming the attribute, not a value the ledger cannot hold.
SafeInt = Annotated[int, msgspec.Meta(ge=-(2**53), le=2**53)]
AttributeValue = (
    Annotated[str, msgspec.Meta(max_length=4096, pattern=TEXT_PATTERN)]
    | SafeInt
    | float
    | bool
    | None
)
AttributeName = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=TEXT_PATTERN)]
Attributes = Annotated[dict[AttributeName, AttributeValue], msgspec.Meta(max_length=32)]

FUTURE_TOLERANCE: Final = timedelta(minutes=5)


class Event(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True, gc=False):
    event_id: ClientKey
    informant_id: InformantId
    action: Action
    occurred_at: AwareDateTime
    content_id: RefId | None = None
    share_id: RefId | None = None
    viewer_id: RefId | None = None
    attributes: Attributes = msgspec.field(default_factory=dict)
    dry_run: bool = False


class EventInvalid(ValueError):
    """An event that decodes but cannot be judged; names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def check_event(event: Event, now: datetime) -> None:
    for name in REQUIRED_FIELDS[event.action]:
        if getattr(event, name) is None:
            raise EventInvalid(name, f"`{name}` is required for action `{event.action}`")
    if event.occurred_at - now > FUTURE_TOLERANCE:
        raise EventInvalid("occurred_at", "`occurred_at` is more than 5 minutes in the future")


_encoder = msgspec.json.Encoder(order="sorted")


def body_hash(event: Event) -> str:
    """What makes two deliveries of one `event_id` the same event (dry_run aside)."""
    canonical = _encoder.encode(
        (
            event.informant_id,
            event.action,
            event.occurred_at.timestamp(),
            event.content_id,
            event.share_id,
            event.viewer_id,
            event.attributes,
        )
    )
    return hashlib.blake2b(canonical, digest_size=12).hexdigest()


_BACKTICK = re.compile(r"`([^`]+)`")


def error_field(exc: msgspec.ValidationError) -> str | None:
    """The JSON path msgspec blames, as a dotted field name (`events[3].occurred_at`)."""
    message, _, path = str(exc).partition(" - at `")
    path = path.rstrip("`").removeprefix("$").lstrip(".")
    named = _BACKTICK.search(message)
    if named and ("missing required field" in message or "unknown field" in message):
        return f"{path}.{named.group(1)}" if path else named.group(1)
    return path or None
