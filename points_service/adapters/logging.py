"""structlog: JSON lines off a terminal, console on one; context from contextvars.

Informant ids never reach a log line as they are: `informant_field` gives a keyed hash
(the same informant hashes the same across lines and restarts, so lines can be followed,
but the id cannot be read back without the key), or nothing (POINTS_LOG_INFORMANTS=omit).
Names, phone numbers and other profile fields are never logged."""

import hashlib
import logging
import os
import sys
from pathlib import Path
from typing import Any

import msgspec
import structlog

_encoder = msgspec.json.Encoder()
_STDERR = open(2, "wb", closefd=False)  # noqa: SIM115 - lives as long as the process
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
        logger_factory=structlog.BytesLoggerFactory(_STDERR),
        cache_logger_on_first_use=True,
    )
