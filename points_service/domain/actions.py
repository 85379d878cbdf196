"""The informant actions the app reports, and what each one must carry."""

from typing import Final, Literal, get_args

Action = Literal["sign_in", "login", "browse", "share", "share_view", "post", "like"]
ACTIONS: Final[tuple[str, ...]] = get_args(Action)

EventField = Literal["content_id", "share_id", "viewer_id"]
EVENT_FIELDS: Final[tuple[str, ...]] = get_args(EventField)

# The fields an action cannot be judged without; a missing one is a 422 naming it.
REQUIRED_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "sign_in": (),
    "login": (),
    "browse": ("content_id",),
    "share": ("content_id",),
    "share_view": ("share_id", "viewer_id"),
    "post": ("content_id",),
    "like": ("content_id",),
}

# Leaderboard and award counters kept beside points. Their position is their index in
# the decision's counter triple (and in the Lua plan).
Counter = Literal["shares", "share_views", "posts"]
COUNTERS: Final[tuple[str, ...]] = get_args(Counter)
