"""structlog: JSON lines off a terminal, console on one; context from contextvars."""

import logging
import sys
from typing import Any

import msgspec
import structlog

_encoder = msgspec.json.Encoder()


def _serialize(event: dict[str, Any], **_: Any) -> bytes:
    return _encoder.encode(event)


def configure_logging(level: str = "INFO", fmt: str = "auto") -> None:
    json_lines = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    if json_lines:
        processors.append(structlog.processors.JSONRenderer(serializer=_serialize))
        factory: Any = structlog.BytesLoggerFactory(sys.stderr.buffer)
    else:
        processors.append(structlog.dev.ConsoleRenderer())
        factory = structlog.PrintLoggerFactory(sys.stderr)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level, logging.INFO)
        ),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
