"""Every refusal is JSON `{status_code, code, detail, field}`; infrastructure trouble is a
503 with Retry-After, and nothing was acknowledged."""

from typing import Any

import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

from points_service.domain.events import error_field
from points_service.http.schemas import ErrorOut
from points_service.services.errors import Conflict, InvalidInput, NotFound, TooMany

_log = structlog.get_logger("points_service.http")


class ApiError(Exception):
    def __init__(self, status: int, code: str, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.field = field


def error_response(
    status: int, code: str, detail: str, field: str | None = None, **headers: str
) -> Response[bytes]:
    return Response(
        msgspec.json.encode(ErrorOut(status, code, detail, field)),
        status_code=status,
        media_type="application/json",
        headers=headers or None,
    )


def decode_error(exc: msgspec.DecodeError) -> ApiError:
    if isinstance(exc, msgspec.ValidationError):
        return ApiError(422, "invalid", str(exc), error_field(exc))
    return ApiError(400, "malformed_json", f"the body is not valid JSON: {exc}")


def decode_body(decoder: msgspec.json.Decoder[Any], body: bytes) -> Any:
    """`body` decoded, or an ApiError: 400 for JSON that is not JSON (or nested past the
    decoder's depth), 422 naming the field for JSON of the wrong shape."""
    try:
        return decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise decode_error(exc) from None
    except RecursionError:
        raise ApiError(400, "malformed_json", "the body's JSON is nested too deeply") from None


def _api_error(_: Request[Any, Any, Any], exc: ApiError) -> Response[bytes]:
    return error_response(exc.status, exc.code, exc.detail, exc.field)


def _invalid(_: Request[Any, Any, Any], exc: InvalidInput) -> Response[bytes]:
    return error_response(422, "invalid", exc.message, exc.field)


def _conflict(_: Request[Any, Any, Any], exc: Conflict) -> Response[bytes]:
    return error_response(409, exc.code, exc.message, exc.field)


def _too_many(_: Request[Any, Any, Any], exc: TooMany) -> Response[bytes]:
    return Response(
        msgspec.json.encode(
            ErrorOut(429, "rate_limited", exc.message, exc.field, retry_after=exc.retry_after)
        ),
        status_code=429,
        media_type="application/json",
        headers={"Retry-After": str(exc.retry_after)},
    )


def _not_found(_: Request[Any, Any, Any], exc: NotFound) -> Response[bytes]:
    return error_response(404, "not_found", exc.message)


def _http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    """Litestar's own refusals, with their headers (a 405's Allow)."""
    return error_response(exc.status_code, "http_error", exc.detail, **(exc.headers or {}))


def _validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[bytes]:
    """Path and query parameters Litestar checked: a 422 naming the first bad one."""
    problems = exc.extra if isinstance(exc.extra, list) else []
    first = problems[0] if problems and isinstance(problems[0], dict) else {}
    field = first.get("key")
    detail = f"{first.get('message', exc.detail)}" if first else exc.detail
    return error_response(422, "invalid", detail, field if isinstance(field, str) else None)


def _route(request: Request[Any, Any, Any]) -> str:
    """The route template, never the path: a path can hold an informant id."""
    return str(request.scope.get("path_template", "unmatched"))


def _unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    _log.warning("dependency_unavailable", route=_route(request), error=repr(exc))
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is not None:
        runtime.metrics.dependency_failed(exc)
    return error_response(
        503, "unavailable", "storage is unreachable; retry later", **{"Retry-After": "1"}
    )


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    _log.exception("unhandled_error", route=_route(request))
    return error_response(500, "internal_error", "internal error")


def exception_handlers(unavailable: tuple[type[Exception], ...]) -> ExceptionHandlersMap:
    handlers: ExceptionHandlersMap = {
        ApiError: _api_error,
        InvalidInput: _invalid,
        Conflict: _conflict,
        TooMany: _too_many,
        NotFound: _not_found,
        ValidationException: _validation,
        HTTPException: _http,
    }
    for kind in unavailable:
        handlers[kind] = _unavailable
    handlers[Exception] = _unexpected
    return handlers
