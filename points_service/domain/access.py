"""Who may call what: API keys with scopes, and the scope each route needs.

Scopes:
- `events:write` — the app's backend: events, batches, redemptions, lottery draws;
- `read` — points, ledgers, profiles, institutions, leaderboards, draws;
- `admin` — everything (rules, rebuilds, reversals, awards, reports, profile and
  institution writes, and every route of the two scopes above);
- `institution:{id}` — that institution's member table and nothing else.

Routes not listed need `admin` (closed unless opened). Health, metrics and the OpenAPI
document are public. The staff console (`/console`) signs a key in once and keeps it in a
session cookie; each of its pages needs the scope `CONSOLE_PAGES` names.
"""

import re
from dataclasses import dataclass
from typing import Final

EVENTS_WRITE: Final = "events:write"
READ: Final = "read"
ADMIN: Final = "admin"
INSTITUTION_PREFIX: Final = "institution:"
PUBLIC: Final = "public"
CONSOLE: Final = "console"  # the console checks its session itself (http/console)

# The scope each console page needs; the institution page needs `institution:{id}`.
CONSOLE_PAGES: Final = {
    "leaderboards": READ,
    "progress": ADMIN,
    "nominations": ADMIN,
    "operations": ADMIN,
}

_INSTITUTION_SCOPE = re.compile(r"^institution:[A-Za-z0-9_.@:\-]{1,64}$")


def scope_problem(scope: str) -> str | None:
    """Why `scope` is not a scope, or None."""
    if scope in (EVENTS_WRITE, READ, ADMIN) or _INSTITUTION_SCOPE.match(scope):
        return None
    return (
        f"unknown scope {scope!r}: one of {EVENTS_WRITE}, {READ}, {ADMIN}, {INSTITUTION_PREFIX}<id>"
    )


@dataclass(frozen=True, slots=True)
class ApiKey:
    name: str
    digest: str  # "sha256:<hex>" of the key; the key itself is never stored
    scopes: frozenset[str]
    # With a secret, the key signs its `events:write` requests (domain/signing.py).
    secret: str | None = None

    def allows(self, needed: str) -> bool:
        return ADMIN in self.scopes or needed in self.scopes


_SEGMENT = r"[^/]+"
# (method or "*", path pattern, the scope needed; "{1}" is the first group).
_ROUTES: Final = [
    ("POST", r"/v1/events", EVENTS_WRITE),
    ("POST", r"/v1/events/batch", EVENTS_WRITE),
    ("POST", rf"/v1/events/{_SEGMENT}/reversal", ADMIN),
    ("POST", rf"/v1/informants/{_SEGMENT}/redemptions", EVENTS_WRITE),
    ("POST", rf"/v1/informants/{_SEGMENT}/draws", EVENTS_WRITE),
    ("GET", rf"/v1/draws/{_SEGMENT}(?:/results)?", READ),
    ("GET", rf"/v1/informants/{_SEGMENT}(?:/points|/ledger|/today)?", READ),
    ("GET", r"/v1/rules", READ),
    ("GET", r"/v1/leaderboards/.*", READ),
    ("GET", rf"/v1/institutions/({_SEGMENT})/members", INSTITUTION_PREFIX + "{1}"),
    ("GET", rf"/v1/institutions/{_SEGMENT}", READ),
    ("GET", r"/health/(?:live|ready)", PUBLIC),
    ("GET", r"/metrics", PUBLIC),
    ("GET", r"/schema(?:/.*)?", PUBLIC),
    ("GET", r"/console(?:/.*)?", CONSOLE),
    ("POST", r"/console/.*", CONSOLE),
]
# Each pattern with its literal head (up to the first special character): a path
# without that head cannot match, and startswith is cheaper than a regex match.
_SPECIAL = re.compile(r"[\\\[\](){}.*+?|^$]")


def _head(pattern: str) -> str:
    found = _SPECIAL.search(pattern)
    return pattern if found is None else pattern[: found.start()]


_COMPILED: Final = [(m, _head(p), re.compile(f"^{p}$"), s) for m, p, s in _ROUTES]


def needed_scope(method: str, path: str) -> str:
    """The scope a request needs: `public`, a scope name, or `admin` for the rest."""
    for route_method, head, pattern, scope in _COMPILED:
        if route_method != method and not (route_method == "GET" and method == "HEAD"):
            continue
        if not path.startswith(head):
            continue
        match = pattern.match(path)
        if match is not None:
            return scope.replace("{1}", match.group(1)) if "{1}" in scope else scope
    return ADMIN
