"""structlog: JSON lines off a terminal, console on one; context from contextvars.

Informant ids never reach a log line as they are: `informant_field` gives a keyed hash
(the same informant hashes the same across lines and restarts, so lines can be followed,
but the id cannot be read back without the key), or nothing (POINTS_LOG_INFORMANTS=omit).
Names, phone numbers and other profile fields are never logged."""

import asyncio
import atexit
import hashlib
import logging
import os
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, cast

import msgspec
import structlog

_encoder = msgspec.json.Encoder()


class _TurnBuffered:
    """File descriptor 2 for structlog's BytesLogger, which writes and flushes each line.
    Lines logged on the thread of a running event loop are held and written together at
    the end of the loop's turn: under load one write(2) carries the access lines of many
    requests instead of one each. Lines from elsewhere (no loop, another thread) go out
    at once. A line is held for at most one turn; a process killed in that turn loses it."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._held: list[bytes] = []
        self._thread = threading.get_ident()
        self._due: asyncio.AbstractEventLoop | None = None  # the loop a release is due on

    def write(self, line: bytes) -> None:
        if threading.get_ident() == self._thread:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            if loop is not None:
                self._held.append(line)
                if self._due is not loop:  # (a loop that stopped first never released)
                    self._due = loop
                    loop.call_soon(self.release)
                return
        self._write(line)

    def flush(self) -> None:
        """Nothing: held lines go out at the end of the turn (`release`)."""

    def release(self) -> None:
        self._due = None
        if self._held:
            lines, self._held = self._held, []
            self._write(b"".join(lines))

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self._fd, view) :]
            except InterruptedError:
                continue
            except OSError:
                return  # a closed or full stderr never takes the service down


_STDERR = _TurnBuffered(2)
atexit.register(_STDERR.release)
LOG_FIELDS = "points.log_fields"  # the ASGI scope key where handlers put summary fields
INFORMANT_MODES = ("hash", "omit")
_informants = {"mode": "hash", "key": b""}


def informant_field(informant_id: str) -> dict[str, str]:
    if _informants["mode"] == "omit":
        return {}
    key = _informants["key"]
    assert isinstance(key, bytes)
    digest = hashlib.blake2b(informant_id.encode(), key=key, digest_size=8).hexdigest()
    return {"informant": digest}


def log_key(data_dir: Path, given: str | None) -> bytes:
    """The key of the informant hash: POINTS_LOG_SALT, or one made once in the data
    directory (shared by the workers, kept across restarts)."""
    if given:
        return hashlib.blake2b(given.encode(), digest_size=32).digest()
    path = data_dir / "log-salt"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fresh = path.with_name(f"log-salt.{os.getpid()}")
        fresh.write_bytes(os.urandom(32))
        os.chmod(fresh, 0o600)
        try:
            os.link(fresh, path)  # the first worker's key wins; the others read it
        except FileExistsError:
            pass
        finally:
            fresh.unlink()
    return path.read_bytes()[:32]


def _serialize(event: dict[str, Any], **_: Any) -> bytes:
    return _encoder.encode(event)


# Loggers are cached on first use (structlog's `cache_logger_on_first_use`), and a cached
# logger keeps the processor list and the output it was made with. So there is one list,
# changed in place, with the level filter in it, and one output, file descriptor 2 itself
# (not the `sys.stderr` object of the moment): a later configure_logging (another app in
# the same process, a test) then reaches every logger made before it.
_PROCESSORS: list[Any] = []
_LEVEL = {"min": logging.INFO}
_JSON_LINES = {"on": True}
_LEVELS = logging.getLevelNamesMapping()


def _at_level(_logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    if _LEVELS.get(method.upper(), logging.CRITICAL) < _LEVEL["min"]:
        raise structlog.DropEvent
    return event


def _to_bytes(_logger: Any, _method: str, line: str) -> bytes:
    return line.encode()


def configure_logging(
    level: str = "INFO", fmt: str = "auto", informants: str = "hash", key: bytes = b""
) -> None:
    if informants not in INFORMANT_MODES:
        raise ValueError(f"informants must be one of {INFORMANT_MODES}")
    _informants.update(mode=informants, key=key)
    _LEVEL["min"] = _LEVELS.get(level.upper(), logging.INFO)
    json_lines = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    _JSON_LINES["on"] = json_lines
    processors: list[Any] = [
        _at_level,
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    if json_lines:
        processors.append(structlog.processors.JSONRenderer(serializer=_serialize))
    else:
        processors += [structlog.dev.ConsoleRenderer(), _to_bytes]
    _PROCESSORS[:] = processors
    structlog.configure(
        processors=_PROCESSORS,
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        logger_factory=structlog.BytesLoggerFactory(cast(BinaryIO, _STDERR)),  # write, flush
        cache_logger_on_first_use=True,
    )


_access = structlog.get_logger("points_service")


def access_line(**fields: Any) -> None:
    """The summary line of one request (event "request", level info). As JSON it is
    built and encoded here in one step, with what structlog's processors would add (the
    bound context, level, timestamp): it is written for every request, and the processor
    chain cost a tenth of a leaderboard read. In console format it goes through
    structlog."""
    if not _JSON_LINES["on"]:
        _access.info("request", **fields)
        return
    if _LEVEL["min"] > logging.INFO:
        return
    line = structlog.contextvars.get_contextvars()
    line.update(fields)
    line["event"] = "request"
    line["level"] = "info"
    line["timestamp"] = datetime.now(UTC)  # msgspec writes it as structlog does: ...Z
    _STDERR.write(_encoder.encode(line) + b"\n")
