"""Staff console sessions, kept in Redis so that every worker and pod knows them and a
sign-out ends one everywhere at once.

The browser holds a random session id (256 bits) in an HTTP-only cookie. Redis holds,
under the SHA-256 of that id (a copy of Redis cannot be replayed as a cookie), which API
key signed in and the session's CSRF token, for a fixed lifetime from sign-in.
"""

import hashlib
import secrets
from dataclasses import dataclass

import msgspec

from points_service.adapters.script_pipeline import ScriptPipeline

_SET = "return redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])"
_GET = "return redis.call('GET', KEYS[1])"
_DEL = "return redis.call('DEL', KEYS[1])"


class _Stored(msgspec.Struct, frozen=True):
    key: str  # the API key's digest ("sha256:…"); the key itself is never kept
    csrf: str
    at: float  # sign-in, Unix time


@dataclass(frozen=True, slots=True)
class Session:
    id: str  # the cookie's value
    key_digest: str
    csrf: str
    signed_in_at: float


class ConsoleSessions:
    def __init__(self, scripts: ScriptPipeline, prefix: str, seconds: int) -> None:
        self._scripts = scripts
        self._prefix = prefix
        self.seconds = seconds
        self._set = scripts.register(_SET)
        self._get = scripts.register(_GET)
        self._del = scripts.register(_DEL)
        self._decoder = msgspec.json.Decoder(_Stored)

    def _key(self, session_id: str) -> str:
        hashed = hashlib.sha256(session_id.encode()).hexdigest()
        return f"{self._prefix}:console:{{session:{hashed}}}"

    async def create(self, key_digest: str, now: float) -> Session:
        """A new session for this key (a sign-in never reuses an id)."""
        session = Session(secrets.token_urlsafe(32), key_digest, secrets.token_urlsafe(32), now)
        stored = msgspec.json.encode(_Stored(key_digest, session.csrf, now))
        await self._scripts.call(self._set, [self._key(session.id)], [stored, self.seconds])
        return session

    async def get(self, session_id: str) -> Session | None:
        raw = await self._scripts.call(self._get, [self._key(session_id)], [])
        if raw is None:
            return None
        try:
            stored = self._decoder.decode(raw)
        except msgspec.DecodeError:
            return None
        return Session(session_id, stored.key, stored.csrf, stored.at)

    async def end(self, session_id: str) -> None:
        await self._scripts.call(self._del, [self._key(session_id)], [])
