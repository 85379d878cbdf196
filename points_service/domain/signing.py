"""HMAC request signing, optional per API key, for the routes of `events:write`.

A key with a signing secret must sign each of those requests:

    X-PS-Timestamp: 1796248974            (Unix seconds, the sender's clock)
    X-PS-Nonce: 3f9a1c0b6d2e4f58a7b1      (16-64 of A-Z a-z 0-9 _ -, new for every request)
    X-PS-Signature: <hex HMAC-SHA256 of the signed text below, keyed by the secret>

The signed text is the timestamp, the nonce, the method and the request target (path and
query) each on a line of its own, then the body as sent:

    "1796248974\\n3f9a1c0b6d2e4f58a7b1\\nPOST\\n/v1/events\\n" + body

The service refuses a timestamp outside the window (clock skew either way) and a nonce
it has seen within twice the window: a captured request cannot be sent again, and a retry
is a new request with a new nonce (it is still the same event: the event id keeps it
exactly-once).
"""

import hashlib
import hmac
import re
import secrets
import time
from typing import Final

TIMESTAMP: Final = "x-ps-timestamp"
NONCE: Final = "x-ps-nonce"
SIGNATURE: Final = "x-ps-signature"
SECRET_PREFIX: Final = "pss_"  # noqa: S105 (a prefix, not a secret)
NONCE_PATTERN: Final = re.compile(r"^[A-Za-z0-9_\-]{16,64}$")


class SignatureRefused(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signed_text(timestamp: str, nonce: str, method: str, target: str, body: bytes) -> bytes:
    return f"{timestamp}\n{nonce}\n{method.upper()}\n{target}\n".encode() + body


def signature(
    secret: str, timestamp: str, nonce: str, method: str, target: str, body: bytes
) -> str:
    text = signed_text(timestamp, nonce, method, target, body)
    return hmac.new(secret.encode(), text, hashlib.sha256).hexdigest()


def signed_headers(
    secret: str, method: str, target: str, body: bytes, now: float | None = None
) -> dict[str, str]:
    """The three headers a sender adds (what a client library would do)."""
    timestamp = str(int(time.time() if now is None else now))
    nonce = secrets.token_hex(16)
    return {
        "X-PS-Timestamp": timestamp,
        "X-PS-Nonce": nonce,
        "X-PS-Signature": signature(secret, timestamp, nonce, method, target, body),
    }


def check_signature(
    secret: str,
    headers: dict[str, str],
    method: str,
    target: str,
    body: bytes,
    now: float,
    window: int,
) -> str:
    """The request's nonce when its signature holds and its timestamp is within
    `window` seconds of `now`; else SignatureRefused naming the header at fault. Whether
    the nonce was seen before is the caller's to ask (it is kept in Redis)."""
    timestamp, nonce, given = (_given(headers, name) for name in (TIMESTAMP, NONCE, SIGNATURE))
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise SignatureRefused(_title(TIMESTAMP), "the timestamp is Unix seconds")
    if abs(now - int(timestamp)) > window:
        raise SignatureRefused(
            _title(TIMESTAMP), f"the timestamp is more than {window} s from the service's clock"
        )
    if not NONCE_PATTERN.match(nonce):
        raise SignatureRefused(_title(NONCE), "the nonce is 16-64 of A-Z a-z 0-9 _ -")
    expected = signature(secret, timestamp, nonce, method, target, body)
    if not hmac.compare_digest(expected, given.strip().lower()):
        raise SignatureRefused(_title(SIGNATURE), "the signature does not match the request")
    return nonce


def _given(headers: dict[str, str], name: str) -> str:
    value = headers.get(name)
    if not value:
        raise SignatureRefused(
            _title(name), f"this key signs its requests: {_title(name)} is missing"
        )
    return value


def _title(header: str) -> str:
    return "-".join("PS" if part == "ps" else part.capitalize() for part in header.split("-"))
